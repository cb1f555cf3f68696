from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_username_keys")]

    # Nullable until 0005 has filled it; unique from 0006 on. Three migrations, so that on PostgreSQL the data
    # migration's updates and the table changes are never in one transaction.
    operations = [migrations.AddField(model_name="usernamekey", name="skeleton", field=models.TextField(null=True))]
