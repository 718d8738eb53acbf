"""The account page: a per-user session generation (sign out everywhere) and tokens their
owner created by name."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0004_cache_versions"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.CreateModel(
            name="SessionGeneration",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="session_generation",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("generation", models.PositiveIntegerField(default=0)),
                ("changed_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="source",
            field=models.CharField(
                choices=[
                    ("command", "create_api_token"),
                    ("siwe", "Sign-In with Ethereum"),
                    ("solana", "Sign in with Solana"),
                    ("account", "Created by its owner (account page or API)"),
                ],
                default="command",
                max_length=16,
            ),
        ),
    ]
