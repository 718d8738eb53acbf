"""`manage.py ingest PATH --title T --owner USER [--gate FILE]`: the whole pipeline for a local
file, in this process, with a progress bar; prints signed playback URLs."""

import json
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.access.playback import playback_grant
from apps.content.models import Content, ContentStatus
from apps.content.services import content_create
from apps.transcode.services import transcode_request, transcode_run
from apps.uploads.filenames import sanitize_filename
from apps.uploads.sources import source_attach, source_inspect
from streamgate.exceptions import DomainError

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Upload, check and encode a local video file, then print its playback URLs."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--title", required=True)
        parser.add_argument("--owner", required=True, help="Username of a creator.")
        parser.add_argument("--description", default="")
        parser.add_argument("--gate", type=Path, help="A JSON file with the gate rule.")

    def handle(
        self,
        *args,
        path: Path,
        title: str,
        owner: str,
        description: str,
        gate: Path | None,
        **options,
    ):
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user {owner!r}; create one with create_api_token --creator.")
        rule = None
        if gate:
            try:
                rule = json.loads(gate.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise CommandError(f"Cannot read the gate in {gate}: {error}") from error
        try:
            content = content_create(owner=user, title=title, description=description, gate=rule)
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stderr.write(f"Content {content.id}: storing {path.name}...")
        stored = f"sources/{content.id}/{sanitize_filename(path.name)}"
        with path.open("rb") as handle:
            default_storage.save(stored, File(handle))
        report = source_inspect(stored)
        if report.problem:
            with transaction.atomic():
                source_attach(content=content, report=report)
            raise CommandError(report.problem)
        with transaction.atomic():
            source_attach(content=content, report=report)
            # Created before the commit, so the source_ready receiver finds this job active
            # and sends no task: a running worker cannot take the encode from under us.
            job = transcode_request(content=content, enqueue=False)
        watcher = _ProgressBar(self.stderr, content.id)
        watcher.start()
        try:
            job = transcode_run(job_id=str(job.id))
        finally:
            watcher.stop()
        content = Content.objects.get(pk=content.pk)
        if content.status != ContentStatus.READY:
            raise CommandError(f"Encoding failed: {content.error}")
        self.stderr.write(
            f"Ready: {content.renditions.count()} renditions, "
            f"{job.realtime_factor or 0:.2f}x realtime."
        )
        # The owner may always watch; these links carry a token signed for the owner.
        playback = playback_grant(user=user, content=content)
        public = settings.STREAMGATE_PUBLIC_URL
        self.stdout.write(f"HLS:  {public}{playback.hls_path}")
        self.stdout.write(f"DASH: {public}{playback.dash_path}")
        self.stderr.write(f"The links expire at {playback.expires_at:%Y-%m-%d %H:%M:%S} UTC.")


class _ProgressBar:
    """Draws the content's progress (as the websocket reports it) on stderr from a thread."""

    def __init__(self, stream, content_id) -> None:
        self.stream, self.content_id = stream, content_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._draw, daemon=True)
        self.tty = sys.stderr.isatty()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        if self.tty:
            self.stream.write("")

    def _draw(self) -> None:
        from django.db import connection

        last = -1
        while not self.stopped.wait(0.5):
            progress = (
                Content.objects.filter(pk=self.content_id)
                .values_list("progress", flat=True)
                .first()
            )
            if progress is None or progress == last:
                continue
            last = progress
            filled = BAR_WIDTH * progress // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {progress:3d}%", ending="" if self.tty else "\n")
        connection.close()
