from django.db import migrations, models

import apps.content.scopes


class Migration(migrations.Migration):
    """Token scopes. Every existing token gets all of them: they keep the full access they had."""

    dependencies = [
        ("access", "0007_token_wallet"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=apps.content.scopes.scopes_all,
                help_text="What the token may do (apps/content/scopes.py), sorted; fixed at "
                "creation. Tokens from before scopes, wallet sign-ins and creation without a "
                "choice hold all.",
            ),
        ),
    ]
