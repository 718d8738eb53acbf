from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("content", "0008_caption"),
    ]

    operations = [
        migrations.AddField(
            model_name="content",
            name="overall_progress",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="0-100 across all phases of the current attempt "
                "(apps/content/progress.py); never lowered within an attempt.",
            ),
        ),
        migrations.AddField(
            model_name="content",
            name="error_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("source", "The file cannot be used"),
                    ("processing", "Processing failed"),
                ],
                help_text="What kind of failure: whether encoding again can help.",
                max_length=16,
            ),
        ),
    ]
