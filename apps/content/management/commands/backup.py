"""`manage.py backup [DEST] [--tar]`: the database, then every media file, into one archive with
a manifest of checksums (apps/content/backups). MEDIA_MASTER_KEYS are not in it: keep them (or
DJANGO_SECRET_KEY, when they are unset) in your secret store."""

import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.content.backups.archive import BackupError
from apps.content.backups.services import backup_create


class Command(BaseCommand):
    help = "Back up the database and the media storage into one archive with checksums."

    def add_arguments(self, parser):
        parser.add_argument(
            "destination",
            nargs="?",
            type=Path,
            help="A new folder (default: STREAMGATE_VAR_DIR/backups/streamgate-<UTC time>).",
        )
        parser.add_argument("--tar", action="store_true", help="Write DEST.tar instead.")

    def handle(self, *args, destination: Path | None, tar: bool, **options):
        if destination is None:
            stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
            destination = settings.VAR_DIR / "backups" / f"streamgate-{stamp}"
        started = time.monotonic()
        try:
            written = backup_create(destination=destination, tar=tar, say=self.stderr.write)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stderr.write(
            f"Backup written in {time.monotonic() - started:.1f} s. It holds no master keys: "
            "restoring needs the same MEDIA_MASTER_KEYS (or DJANGO_SECRET_KEY if they are unset)."
        )
        self.stdout.write(str(written))
