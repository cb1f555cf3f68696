"""Suppression now belongs to the ``mail`` app (mail.0001_initial): removed from this app's state only, so its table
``notifications_suppression`` and every row in it stay where they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notifications", "0003_digest"), ("mail", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Suppression")]),
    ]
