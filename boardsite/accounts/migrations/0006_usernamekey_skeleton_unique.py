from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_username_skeletons")]

    operations = [
        migrations.AlterField(model_name="usernamekey", name="skeleton", field=models.TextField(unique=True)),
    ]
