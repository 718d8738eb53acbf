"""`manage.py restore ARCHIVE [--force] [--ignore-checks]`: check a backup whole, load its
database and media into this (fresh) stack, then migrate it to this code's schema."""

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.content.backups.archive import BackupError
from apps.content.backups.services import backup_restore


class Command(BaseCommand):
    help = "Restore a backup made by `manage.py backup` into an empty database and storage."

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="The backup folder or .tar file.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace a database that has tables and write over stored files.",
        )
        parser.add_argument(
            "--ignore-checks",
            action="store_true",
            help="Restore even though this stack lacks what the content needs (master keys).",
        )

    def handle(self, *args, archive: Path, force: bool, ignore_checks: bool, **options):
        try:
            manifest = backup_restore(
                source=archive, force=force, ignore_checks=ignore_checks, say=self.stderr.write
            )
        except BackupError as error:
            raise CommandError(str(error)) from error
        # An older backup into newer code: bring its schema up to date.
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"Restored the backup of {manifest['created_at']}.")
