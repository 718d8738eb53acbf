"""`manage.py encrypt_contents [CONTENT_ID ...]`: encrypt published contents that are still in
the clear token-path mode (from before encryption, or MEDIA_ENCRYPTION=0): their CMAF segments
re-packaged, not re-encoded. Safe to run again: encrypted ones are skipped."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from apps.content.models import Content
from apps.content.storage import StorageUnavailable
from apps.transcode.models import DeliveryEncryption, JobState, TranscodeJob
from apps.transcode.services.encrypting import job_encrypt


class Command(BaseCommand):
    help = "Encrypt published contents still delivered in the clear (no re-encode)."

    def add_arguments(self, parser):
        parser.add_argument("content_ids", nargs="*", help="Only these contents (default: all).")

    def handle(self, *args, content_ids: list[str], **options):
        published = Content.objects.exclude(published_job=None).values("published_job_id")
        jobs = TranscodeJob.objects.filter(state=JobState.SUCCEEDED, pk__in=published).exclude(
            pk__in=DeliveryEncryption.objects.values("job_id")
        )
        if content_ids:
            try:
                wanted = [uuid.UUID(value) for value in content_ids]
            except ValueError:
                raise CommandError(
                    f"Content ids are UUIDs (as the API and the admin show them): {content_ids}"
                ) from None
            jobs = jobs.filter(content_id__in=wanted)
        done = failed = 0
        for job in jobs.select_related("content").order_by("created_at"):
            try:
                job_encrypt(job)
            except (FileNotFoundError, StorageUnavailable, OSError) as error:
                failed += 1
                self.stderr.write(f"{job.content_id}: not encrypted: {error}")
                continue
            done += 1
            self.stdout.write(f"{job.content_id}: encrypted ({job.content.title})")
        self.stdout.write(f"{done} encrypted, {failed} failed.")
        if failed:
            raise CommandError(f"{failed} contents could not be encrypted; run again to retry.")
