"""The Suppression model, moved here from ``notifications`` with its table: state only, the table and its rows stay.

On a new database ``notifications.0001_initial`` still creates the table (hence the dependency, a migration-graph edge,
not an import); ``notifications.0004_suppression_to_mail`` then drops the model from that app's state."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("notifications", "0003_digest")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Suppression",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("address_key", models.CharField(max_length=254, unique=True)),
                        ("reason", models.CharField(max_length=20)),
                        ("detail", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"db_table": "notifications_suppression"},
                ),
            ],
            database_operations=[],
        ),
    ]
