"""Cache versions kept by PostgreSQL (streamgate/versions.py): the table and its functions, and
the content tables under watch. Contents follow their own rule (ready: everyone's; otherwise
their owner's); a rendition is shown with its content; a user's name is shown as
the owner of their contents (a login's time is not)."""

from django.conf import settings
from django.db import migrations

from streamgate.version_triggers import version_table, watch
from streamgate.versions import PUBLIC


class Migration(migrations.Migration):
    dependencies = [
        ("content", "0005_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        version_table(),
        watch("content", "Content", name="content"),
        watch("content", "Rendition", name="public", scope=PUBLIC),
        watch(
            *settings.AUTH_USER_MODEL.split("."),
            name="public",
            events="UPDATE OR DELETE",
            scope=PUBLIC,
            quiet=("last_login",),
        ),
    ]
