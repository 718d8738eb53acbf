"""Captions, under watch: a content's JSON lists them, so a change moves the public version
(as a rendition's does; an owner's cached pages depend on it too)."""

import uuid

import django.db.models.deletion
from django.db import migrations, models

from streamgate.version_triggers import watch
from streamgate.versions import PUBLIC


class Migration(migrations.Migration):
    dependencies = [
        ("content", "0007_search"),
    ]

    operations = [
        migrations.CreateModel(
            name="Caption",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "language",
                    models.CharField(help_text="BCP 47 tag, e.g. en or pt-BR.", max_length=35),
                ),
                (
                    "label",
                    models.CharField(help_text="What players show in their menu.", max_length=100),
                ),
                (
                    "path",
                    models.CharField(help_text="Storage path of the WebVTT file.", max_length=500),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "content",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="captions",
                        to="content.content",
                    ),
                ),
            ],
            options={
                "ordering": ["language"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("content", "language"), name="caption_one_per_language"
                    )
                ],
            },
        ),
        watch("content", "Caption", name="public", scope=PUBLIC),
    ]
