"""`manage.py media_keys_rewrap`: after adding a master key to MEDIA_MASTER_KEYS and naming it in
MEDIA_MASTER_KEY_ID, wrap every content key under it. The media are not touched; once this has
run, the old master key may leave the settings."""

from django.core.management.base import BaseCommand, CommandError

from apps.content.audit import audit_command
from apps.transcode.keys import KeyUnavailable, master_key_id
from apps.transcode.services.encrypting import master_keys_rewrap


class Command(BaseCommand):
    help = "Rewrap every content key under the current master key (MEDIA_MASTER_KEY_ID)."

    def handle(self, *args, **options):
        try:
            with audit_command("media_keys_rewrap"):
                changed = master_keys_rewrap()
        except KeyUnavailable as error:
            raise CommandError(
                f"{error}: keep the old master key configured until this has run."
            ) from error
        self.stdout.write(f"{changed} content keys now wrapped under {master_key_id()!r}.")
