"""The reaper: jobs (and chunks) whose worker died, jobs whose message was lost, contents without
a job.

A job whose worker died (known dead, or silent past TRANSCODE_STALE_AFTER_SECONDS) is ended and
replaced by its next attempt, until TRANSCODE_MAX_ATTEMPTS attempts in a row have died.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.transcode import tasks
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services.chunking import chunks_reap
from apps.transcode.services.outputs import delete_outputs
from apps.transcode.services.requesting import new_job, time_limits, transcode_request
from streamgate.celery import enqueue_on_commit_with
from streamgate.metrics import TRANSCODE_FINISHED

logger = logging.getLogger(__name__)

# Why a job ended and started again, for the job record (staff) and the creator.
WORKER_STOPPED = "The worker encoding this video stopped; it was started again."
WORKER_SILENT = "The worker encoding this video stopped answering; it was started again."


@dataclass(frozen=True)
class WorkerLost:
    ended: bool
    successor: TranscodeJob | None = None


def _restarts_in_a_row(content: Content) -> int:
    """Attempts since the last one a person asked for (first upload or retry)."""
    count = 0
    for restart in content.transcode_jobs.order_by("-attempt").values_list("restart", flat=True):
        if not restart:
            break
        count += 1
    return count


def worker_lost(
    *, job: TranscodeJob, stale_before: datetime | None = None, error: str = WORKER_STOPPED
) -> WorkerLost:
    """End a job whose worker died and queue the next attempt, or fail the content when
    TRANSCODE_MAX_ATTEMPTS attempts in a row died. With ``stale_before``, only a job whose
    last heartbeat is older (a job that beat meanwhile is alive after all)."""
    with transaction.atomic():
        ending = TranscodeJob.objects.filter(pk=job.pk, state=JobState.RUNNING, worker=job.worker)
        if stale_before is not None:
            ending = ending.filter(heartbeat_at__lt=stale_before)
        ended = ending.update(state=JobState.FAILED, error=error, finished_at=timezone.now())
        if not ended:
            return WorkerLost(ended=False)
        transaction.on_commit(lambda: delete_outputs(job))
        transaction.on_commit(TRANSCODE_FINISHED.labels(outcome="lost").inc)
        content = Content.objects.select_for_update().filter(pk=job.content_id).first()
        if content is None:
            return WorkerLost(ended=True)
        died = _restarts_in_a_row(content) + 1
        if died >= settings.TRANSCODE_MAX_ATTEMPTS:
            content_status_set(
                content=content,
                status=ContentStatus.FAILED,
                error=f"Encoding stopped {died} times in a row; retry later or contact us.",
                error_kind=ErrorKind.PROCESSING,
            )
            return WorkerLost(ended=True)
        content_status_set(
            content=content, status=ContentStatus.QUEUED, progress=0, restarting=True
        )
        return WorkerLost(ended=True, successor=new_job(content, restart=True))


def transcode_reap() -> dict[str, int]:
    """Beat: restart jobs whose worker died, resend jobs whose message was lost, and queue
    contents whose source is ready but have no job."""
    now = timezone.now()
    counts = {"restarted": 0, "resent": 0, "requested": 0}
    stale = now - timedelta(seconds=settings.TRANSCODE_STALE_AFTER_SECONDS)
    # A chunked job lives while its chunks beat; a silent chunk goes back to the queue alone.
    counts.update(chunks_reap(stale_before=stale))
    silent = TranscodeJob.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=stale)
    for job in silent.filter(chunk_plan={}):
        # Missed heartbeats: the worker died, hung or lost the database for too long.
        if worker_lost(job=job, stale_before=stale, error=WORKER_SILENT).ended:
            counts["restarted"] += 1
            logger.warning("transcode worker lost", extra={"job_id": str(job.id)})
    forgotten = TranscodeJob.objects.filter(
        state=JobState.QUEUED, enqueued_at__lt=now - timedelta(minutes=30)
    ).select_related("content")
    for job in forgotten:
        if TranscodeJob.objects.filter(pk=job.pk, state=JobState.QUEUED).update(enqueued_at=now):
            enqueue_on_commit_with(
                tasks.transcode_job, (str(job.id),), options=time_limits(job.content.duration)
            )
            counts["resent"] += 1
    waiting = (
        Content.objects.filter(
            status=ContentStatus.QUEUED, updated_at__lt=now - timedelta(minutes=5)
        )
        .exclude(source_path="")
        .exclude(transcode_jobs__state__in=(JobState.QUEUED, JobState.RUNNING))
    )
    for content in waiting:
        transcode_request(content=content)
        counts["requested"] += 1
    logger.info("transcode reaped", extra=counts)
    return counts
