"""A content's JSON shows its registration, the registry contract and its pin: their rows move
the public cache version (streamgate/versions.py), except step bookkeeping no page shows."""

from django.db import migrations

from streamgate.version_triggers import watch
from streamgate.versions import PUBLIC

STEP_BOOKKEEPING = ("lease_token", "lease_expires_at", "step_due_at", "failures", "updated_at")


class Migration(migrations.Migration):
    dependencies = [
        ("chain", "0002_registration_steps"),
        ("content", "0006_cache_versions"),
    ]

    operations = [
        watch("chain", "ChainContract", name="public", scope=PUBLIC),
        watch("chain", "Registration", name="public", scope=PUBLIC, quiet=STEP_BOOKKEEPING),
        watch("chain", "Pin", name="public", scope=PUBLIC, quiet=STEP_BOOKKEEPING),
    ]
