"""How a job ends: published (the content points at its outputs) or failed (the content says
why). Shared by whole jobs (running.py) and chunked ones (chunking.py)."""

import logging

from django.db import transaction
from django.utils import timezone

from apps.content.models import Content, ContentStatus, Rendition
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.transcode import ffmpeg, tasks
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.packaging import PackagedRendition
from apps.transcode.runner import Cancelled
from apps.transcode.services.encrypting import Encrypted, encryption_save
from apps.transcode.services.outputs import delete_outputs
from streamgate.celery import enqueue_on_commit
from streamgate.metrics import TRANSCODE_FINISHED, TRANSCODE_REALTIME, TRANSCODE_SECONDS

logger = logging.getLogger(__name__)


def renditions_replace(content: Content, job: TranscodeJob, renditions: list[PackagedRendition]):
    Rendition.objects.filter(content=content).delete()
    Rendition.objects.bulk_create(
        Rendition(
            content=content,
            name=rendition.name,
            width=rendition.width,
            height=rendition.height,
            bitrate=rendition.peak_bitrate,
            average_bitrate=rendition.average_bitrate,
            codecs=rendition.codecs,
            playlist=job.output_prefix + rendition.playlist,
        )
        for rendition in renditions
    )


def publish_job(
    job: TranscodeJob,
    *,
    renditions: list[PackagedRendition],
    duration: float,
    realtime_factor: float | None,
    encrypted: Encrypted | None = None,
) -> None:
    """Point the content at this job's outputs (and its keys, when encrypted), in one
    transaction."""
    with transaction.atomic():
        current = TranscodeJob.objects.select_for_update().filter(pk=job.pk).first()
        content = Content.objects.select_for_update().filter(pk=job.content_id).first()
        if (
            current is not None
            and content is not None
            and content.published_job_id == job.pk
            and current.state == JobState.SUCCEEDED
        ):
            return  # an earlier try committed, and the database went away before it could say
        if current is None or content is None or current.state != JobState.RUNNING:
            raise Cancelled(str(job.pk))
        renditions_replace(content, job, renditions)
        if encrypted is not None:
            encryption_save(job, encrypted)
        Content.objects.filter(pk=content.pk).update(
            published_job=job,
            poster=job.output_prefix + ffmpeg.POSTER,
            duration=duration,
            playable_seconds=None,
        )
        TranscodeJob.objects.filter(pk=job.pk).update(
            state=JobState.SUCCEEDED,
            finished_at=timezone.now(),
            realtime_factor=realtime_factor,
            stage_seconds=job.stage_seconds,
            stage="",
        )
        content_status_set(content=content, status=ContentStatus.READY, progress=100)
        enqueue_on_commit(tasks.transcode_outputs_prune, str(content.id), str(job.id))
    TRANSCODE_FINISHED.labels(outcome="succeeded").inc()
    if realtime_factor:
        TRANSCODE_REALTIME.observe(realtime_factor)
        TRANSCODE_SECONDS.observe(duration / realtime_factor)
    logger.info(
        "transcode published", extra={"job_id": str(job.id), "realtime_factor": realtime_factor}
    )


def fail_job(
    job: TranscodeJob,
    message: str,
    *,
    exit_code: int | None = None,
    stderr: str = "",
    kind: str = ErrorKind.PROCESSING,
) -> None:
    """The job failed: the content shows why; partial outputs go."""
    with transaction.atomic():
        fields = {"state": JobState.FAILED, "error": message, "finished_at": timezone.now()}
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if stderr:
            fields["stderr_tail"] = ffmpeg.redact_urls(stderr)[-8000:]
        if not TranscodeJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(**fields):
            return
        content = Content.objects.filter(pk=job.content_id).first()
        if content is not None and content.published_job_id == job.pk:
            # A chunked job that made its first chunks watchable: they go with it.
            Rendition.objects.filter(content=content).delete()
            Content.objects.filter(pk=content.pk).update(
                published_job=None, playable_seconds=None, poster=""
            )
            content.published_job_id = None
        if content is not None and content.status != ContentStatus.READY:
            content_status_set(
                content=content, status=ContentStatus.FAILED, error=message, error_kind=kind
            )
        transaction.on_commit(lambda: delete_outputs(job))
    TRANSCODE_FINISHED.labels(outcome="failed").inc()
    logger.warning("transcode failed", extra={"job_id": str(job.id), "error": message})
