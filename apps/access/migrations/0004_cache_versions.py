"""Who may do what moves the auth cache version (streamgate/versions.py): a token revoked,
expiring differently or deleted, a user changed or deleted. Creating either, recording a
token's use and a login's time make no cached answer wrong."""

from django.conf import settings
from django.db import migrations

from streamgate.version_triggers import watch
from streamgate.versions import AUTH


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0003_wallets_nonces_token_expiry"),
        ("content", "0006_cache_versions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        watch(
            "access",
            "ApiToken",
            name="auth",
            events="UPDATE OR DELETE",
            scope=AUTH,
            quiet=("last_used_at",),
        ),
        watch(
            *settings.AUTH_USER_MODEL.split("."),
            name="auth",
            events="UPDATE OR DELETE",
            scope=AUTH,
            quiet=("last_login",),
        ),
    ]
