"""Requesting and retrying transcode jobs: every way a job is queued.

A job is one attempt at a content. It is created with its own storage prefix and its task is
sent after commit, with Celery time limits scaled to the video's length.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.transcode import tasks
from apps.transcode.models import JobState, TranscodeJob
from streamgate.celery import enqueue_on_commit_with
from streamgate.exceptions import Conflict

logger = logging.getLogger(__name__)


def time_limits(duration: float | None) -> dict[str, int]:
    """Celery soft/hard time limits for encoding ``duration`` seconds of video."""
    soft = int((duration or 60) * settings.TRANSCODE_SECONDS_PER_MEDIA_SECOND)
    soft = max(settings.TRANSCODE_MIN_TIME_LIMIT, min(soft, settings.TRANSCODE_MAX_TIME_LIMIT))
    return {"soft_time_limit": soft, "time_limit": soft + 120}


@transaction.atomic
def transcode_request(*, content: Content, enqueue: bool = True) -> TranscodeJob:
    """Queue a job for a content whose source is stored; the running or queued job if any.

    ``enqueue=False`` creates the job without sending a task, for callers that run it
    themselves (``manage.py ingest``)."""
    content = Content.objects.select_for_update().get(pk=content.pk)
    active = content.transcode_jobs.filter(state__in=(JobState.QUEUED, JobState.RUNNING)).first()
    if active:
        return active
    return new_job(content, enqueue=enqueue)


def new_job(content: Content, *, enqueue: bool = True, restart: bool = False) -> TranscodeJob:
    last = content.transcode_jobs.aggregate(last=Max("attempt"))["last"] or 0
    job = TranscodeJob(
        content=content, attempt=last + 1, restart=restart, enqueued_at=timezone.now()
    )
    job.output_prefix = f"renditions/{content.id}/{job.id}/"
    job.save(force_insert=True)
    if enqueue:
        enqueue_on_commit_with(
            tasks.transcode_job, (str(job.id),), options=time_limits(content.duration)
        )
    logger.info("transcode queued", extra={"job_id": str(job.id), "attempt": job.attempt})
    return job


@transaction.atomic
def transcode_retry(*, content: Content) -> TranscodeJob:
    """Re-queue a failed content (its source is kept); 409 for anything else."""
    content = Content.objects.select_for_update().get(pk=content.pk)
    if content.status != ContentStatus.FAILED:
        raise Conflict(
            f"Only failed content can be retried; this one is {content.status}.",
            reason="not_failed",
        )
    if not content.source_path:
        raise Conflict(
            "This content has no uploaded file to encode; upload one first.", reason="no_source"
        )
    if content.error_kind == ErrorKind.SOURCE:
        raise Conflict(
            "Encoding this file again cannot help: it is not a video we can use. "
            "Replace the file instead.",
            reason="not_retryable",
        )
    content_status_set(content=content, status=ContentStatus.QUEUED, progress=0, restarting=True)
    return new_job(content)


def on_source_ready(*, content_id: str) -> None:
    """The uploads app stored and checked a source: encode it."""
    content = Content.objects.filter(pk=content_id, status=ContentStatus.QUEUED).first()
    if content is not None:
        transcode_request(content=content)
