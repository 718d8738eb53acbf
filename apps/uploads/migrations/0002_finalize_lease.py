from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("uploads", "0001_initial")]

    operations = [
        migrations.RenameField(
            model_name="upload", old_name="finalize_started_at", new_name="finalize_renewed_at"
        ),
        migrations.AlterField(
            model_name="upload",
            name="finalize_token",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
