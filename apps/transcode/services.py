"""Every write in the transcode workflow: queue a job, run it, publish it, fail it, retry it.

A job is one attempt. It is claimed with a conditional UPDATE (QUEUED -> RUNNING), runs through
``runner.execute`` under its own storage prefix, and is published in one transaction that points
the content at it. Superseded and partial outputs are deleted after commit.
"""

import logging
import os
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.content.models import Content, ContentStatus, Rendition
from apps.content.services import content_status_set
from apps.content.storage import StorageUnavailable, storage_delete_prefix
from apps.transcode import ffmpeg, tasks
from apps.transcode.ladder import UnusableSource
from apps.transcode.models import FINISHED_STATES, JobState, TranscodeJob
from apps.transcode.outage import wait_out
from apps.transcode.packaging import PackagingError
from apps.transcode.probe import NotMedia
from apps.transcode.runner import Cancelled, JobRun, Outcome, execute
from streamgate.celery import TRANSIENT, enqueue_on_commit, enqueue_on_commit_with
from streamgate.exceptions import Conflict
from streamgate.metrics import TRANSCODE_REALTIME, TRANSCODE_SECONDS

logger = logging.getLogger(__name__)

# Failures that say nothing about the video (streamgate.celery.TRANSIENT: storage, database,
# cache or broker away): the job goes back to the queue and is retried.

# Why a job ended or started again, for the job record (staff) and the creator.
WORKER_STOPPED = "The worker encoding this video stopped; it was started again."
WORKER_SILENT = "The worker encoding this video stopped answering; it was started again."
RESTARTED_DATABASE = "Restarted after the database was unavailable."
RESTARTED_STORAGE = "Restarted after storage was unavailable."
RESTARTED_REDIS = "Restarted after Redis (cache and broker) was unavailable."


def restart_reason(error: BaseException) -> str:
    if isinstance(error, StorageUnavailable):
        return RESTARTED_STORAGE
    if isinstance(error, OperationalError | InterfaceError):
        return RESTARTED_DATABASE
    return RESTARTED_REDIS


def unavailable_dependency(error: BaseException) -> str:
    """What a TRANSIENT error says was away, as the start of a sentence for the creator."""
    if isinstance(error, StorageUnavailable):
        return "Storage"
    if isinstance(error, OperationalError | InterfaceError):
        return "The database"
    return "Redis (cache and broker)"


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def time_limits(duration: float | None) -> dict[str, int]:
    """Celery soft/hard time limits for encoding ``duration`` seconds of video."""
    soft = int((duration or 60) * settings.TRANSCODE_SECONDS_PER_MEDIA_SECOND)
    soft = max(settings.TRANSCODE_MIN_TIME_LIMIT, min(soft, settings.TRANSCODE_MAX_TIME_LIMIT))
    return {"soft_time_limit": soft, "time_limit": soft + 120}


# --- queueing ---------------------------------------------------------------------------------


@transaction.atomic
def transcode_request(*, content: Content, enqueue: bool = True) -> TranscodeJob:
    """Queue a job for a content whose source is stored; the running or queued job if any.

    ``enqueue=False`` creates the job without sending a task, for callers that run it
    themselves (``manage.py ingest``)."""
    content = Content.objects.select_for_update().get(pk=content.pk)
    active = content.transcode_jobs.filter(state__in=(JobState.QUEUED, JobState.RUNNING)).first()
    if active:
        return active
    return _new_job(content, enqueue=enqueue)


def _new_job(content: Content, *, enqueue: bool = True, restart: bool = False) -> TranscodeJob:
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
    content_status_set(content=content, status=ContentStatus.QUEUED, progress=0)
    return _new_job(content)


def on_source_ready(*, content_id: str) -> None:
    """The uploads app stored and checked a source: encode it."""
    content = Content.objects.filter(pk=content_id, status=ContentStatus.QUEUED).first()
    if content is not None:
        transcode_request(content=content)


# --- running ----------------------------------------------------------------------------------


def _claim(job_id: str, worker: str, *, task_id: str, task_retries: int) -> TranscodeJob | None:
    now = timezone.now()
    running = {
        "state": JobState.RUNNING,
        "worker": worker,
        "started_at": now,
        "heartbeat_at": now,
        "stage": "",
        "task_id": task_id,
        "task_retries": task_retries,
    }
    claimed = TranscodeJob.objects.filter(pk=job_id, state=JobState.QUEUED).update(**running)
    if not claimed and task_id:
        # A retry of the task whose run ended on a database error and could not put the job
        # back in the queue (the database was away): that run is over, since Celery sends the
        # retry only after it, so the job is this retry's to take back at once. A second
        # delivery of the same message (same retry count) is not.
        claimed = TranscodeJob.objects.filter(
            pk=job_id, state=JobState.RUNNING, task_id=task_id, task_retries__lt=task_retries
        ).update(**running, interruption=RESTARTED_DATABASE)
    job = TranscodeJob.objects.select_related("content").filter(pk=job_id).first()
    if claimed:
        return job
    if job is not None and job.state == JobState.RUNNING and _worker_gone(job):
        # Celery redelivered the task of a worker that died mid-encode: this attempt is over,
        # the next one starts here and now.
        successor = worker_lost(job=job).successor
        if successor is not None:
            return _claim(str(successor.id), worker, task_id=task_id, task_retries=task_retries)
    return None


def _worker_gone(job: TranscodeJob) -> bool:
    """The job's worker process is known dead (same host), or has missed its heartbeats."""
    host, _, pid = job.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    stale = timezone.now() - timedelta(seconds=settings.TRANSCODE_STALE_AFTER_SECONDS)
    return job.heartbeat_at is None or job.heartbeat_at < stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def transcode_run(
    *, job_id: str, worker: str | None = None, task_id: str = "", task_retries: int = 0
) -> TranscodeJob | None:
    """Run a queued job to the end: published, failed with a message, or cancelled.

    A transient failure (storage, database) puts the job back in the queue and propagates,
    for the task to retry; a retry of the same task (``task_id``, a higher ``task_retries``)
    takes back a job that could not be put back because the database was away.
    """
    worker = worker or this_worker()
    _sweep_work_dirs()
    job = _claim(job_id, worker, task_id=task_id, task_retries=task_retries)
    if job is None:
        logger.info("transcode job not ours to run", extra={"job_id": job_id})
        return TranscodeJob.objects.filter(pk=job_id).first()
    if job.interruption:
        # Started again: what the interrupted run uploaded goes, so nothing half-made remains.
        logger.info(
            "transcode restarted", extra={"job_id": job_id, "interruption": job.interruption}
        )
        _delete_outputs(job.output_prefix)
    workdir = Path(settings.TRANSCODE_WORK_DIR) / str(job.id)
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        outcome = execute(
            JobRun(job=job, worker=worker),
            workdir,
            source_seconds=time_limits(job.content.duration)["time_limit"] + 600,
        )
        wait_out(lambda: _publish(job, outcome), job_id=job_id, what="publish")
    except (NotMedia, UnusableSource) as error:
        _fail(job, str(error))
    except ffmpeg.EncodeFailed as error:
        _fail(job, str(error), exit_code=error.result.exit_code, stderr=error.result.stderr_tail)
    except PackagingError as error:
        _fail(
            job, "Encoding produced incomplete output; it will not be published.", stderr=str(error)
        )
    except Cancelled:
        logger.info("transcode cancelled", extra={"job_id": job_id})
        _delete_outputs(job.output_prefix)
    except TRANSIENT as error:
        logger.warning(
            "transcode interrupted; the job goes back to the queue",
            extra={"job_id": job_id, "reason": restart_reason(error)},
            exc_info=True,
        )
        _requeue(job, worker, reason=restart_reason(error))
        raise
    except BaseException as error:  # a time limit, a bug: record it, then let it propagate
        _fail(job, _unexpected_message(error))
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TranscodeJob.objects.filter(pk=job_id).first()


def _requeue(job: TranscodeJob, worker: str, *, reason: str) -> None:
    try:
        TranscodeJob.objects.filter(pk=job.pk, state=JobState.RUNNING, worker=worker).update(
            state=JobState.QUEUED, worker="", enqueued_at=timezone.now(), interruption=reason
        )
    except DatabaseError:
        # The database is what failed: the task's retry takes the job back (_claim).
        logger.warning("could not requeue the job", extra={"job_id": str(job.pk)}, exc_info=True)


def _unexpected_message(error: BaseException) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(error, SoftTimeLimitExceeded):
        return "Encoding took longer than allowed for a video of this length and was stopped."
    return "Encoding failed because of an internal error; our staff have been told."


def _sweep_work_dirs() -> None:
    """Remove work folders left by jobs whose worker was killed (its `finally` never ran)."""
    root = Path(settings.TRANSCODE_WORK_DIR)
    if not root.is_dir():
        return
    names = {entry.name for entry in root.iterdir() if entry.is_dir()}
    if not names:
        return
    running = {
        str(job_id)
        for job_id, job_worker in TranscodeJob.objects.filter(
            pk__in=[name for name in names if len(name) == 36], state=JobState.RUNNING
        ).values_list("id", "worker")
        if not _is_dead_here(job_worker)
    }
    for name in names - running:
        shutil.rmtree(root / name, ignore_errors=True)


def _is_dead_here(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def _publish(job: TranscodeJob, outcome: Outcome) -> None:
    """Point the content at this job's outputs, in one transaction."""
    with transaction.atomic():
        current = TranscodeJob.objects.select_for_update().filter(pk=job.pk).first()
        content = Content.objects.select_for_update().filter(pk=job.content_id).first()
        if current is not None and content is not None and content.published_job_id == job.pk:
            return  # an earlier try committed, and the database went away before it could say
        if current is None or content is None or current.state != JobState.RUNNING:
            raise Cancelled(str(job.pk))
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
            for rendition in outcome.packaged.renditions
        )
        Content.objects.filter(pk=content.pk).update(
            published_job=job, poster=job.output_prefix + ffmpeg.POSTER, duration=outcome.duration
        )
        TranscodeJob.objects.filter(pk=job.pk).update(
            state=JobState.SUCCEEDED,
            finished_at=timezone.now(),
            realtime_factor=outcome.realtime_factor,
            stage_seconds=job.stage_seconds,
            stage="",
        )
        content_status_set(content=content, status=ContentStatus.READY, progress=100)
        enqueue_on_commit(tasks.transcode_outputs_prune, str(content.id), str(job.id))
    if outcome.realtime_factor:
        TRANSCODE_REALTIME.observe(outcome.realtime_factor)
        TRANSCODE_SECONDS.observe(outcome.duration / outcome.realtime_factor)
    logger.info(
        "transcode published",
        extra={"job_id": str(job.id), "realtime_factor": outcome.realtime_factor},
    )


def _fail(
    job: TranscodeJob, message: str, *, exit_code: int | None = None, stderr: str = ""
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
        if content is not None and content.status != ContentStatus.READY:
            content_status_set(content=content, status=ContentStatus.FAILED, error=message)
        prefix = job.output_prefix
        transaction.on_commit(lambda: _delete_outputs(prefix))
    logger.warning("transcode failed", extra={"job_id": str(job.id), "error": message})


def _delete_outputs(prefix: str) -> None:
    try:
        storage_delete_prefix(prefix)
    except StorageUnavailable:
        logger.warning("could not delete outputs yet", extra={"prefix": prefix}, exc_info=True)


def transcode_give_up(*, job_id: str, message: str) -> None:
    """A job whose task ran out of retries (storage kept failing) ends failed."""
    job = TranscodeJob.objects.filter(pk=job_id).first()
    if job is not None and job.state not in FINISHED_STATES:
        TranscodeJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
        _fail(job, message)


def transcode_outputs_prune(*, content_id: str, keep_job_id: str) -> int:
    """Delete the outputs of every other job of the content (superseded or failed)."""
    removed = 0
    for prefix in (
        TranscodeJob.objects.filter(content_id=content_id)
        .exclude(pk=keep_job_id)
        .values_list("output_prefix", flat=True)
    ):
        removed += storage_delete_prefix(prefix)
    return removed


# --- the reaper ---------------------------------------------------------------------------------


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
        prefix = job.output_prefix
        transaction.on_commit(lambda: _delete_outputs(prefix))
        content = Content.objects.select_for_update().filter(pk=job.content_id).first()
        if content is None:
            return WorkerLost(ended=True)
        died = _restarts_in_a_row(content) + 1
        if died >= settings.TRANSCODE_MAX_ATTEMPTS:
            content_status_set(
                content=content,
                status=ContentStatus.FAILED,
                error=f"Encoding stopped {died} times in a row; retry later or contact us.",
            )
            return WorkerLost(ended=True)
        content_status_set(content=content, status=ContentStatus.QUEUED, progress=0)
        return WorkerLost(ended=True, successor=_new_job(content, restart=True))


def transcode_reap() -> dict[str, int]:
    """Beat: restart jobs whose worker died, resend jobs whose message was lost, and queue
    contents whose source is ready but have no job."""
    now = timezone.now()
    counts = {"restarted": 0, "resent": 0, "requested": 0}
    stale = now - timedelta(seconds=settings.TRANSCODE_STALE_AFTER_SECONDS)
    for job in TranscodeJob.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=stale):
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
