"""Running one queued job: claim it, execute it, then publish it, fail it or put it back.

The job is claimed with a conditional UPDATE (QUEUED -> RUNNING), runs through
``runner.execute`` under its own storage prefix, and is published in one transaction that points
the content at it. Partial outputs are deleted after commit.
"""

import logging
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from apps.content.models import Content, ContentStatus, Rendition
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.content.storage import StorageUnavailable
from apps.transcode import ffmpeg, tasks
from apps.transcode.ladder import UnusableSource
from apps.transcode.models import FINISHED_STATES, JobState, TranscodeJob
from apps.transcode.outage import wait_out
from apps.transcode.packaging import PackagingError
from apps.transcode.probe import NotMedia
from apps.transcode.runner import Cancelled, JobRun, Outcome, execute
from apps.transcode.services.outputs import delete_outputs
from apps.transcode.services.reaper import worker_lost
from apps.transcode.services.requesting import time_limits
from streamgate.celery import TRANSIENT, enqueue_on_commit
from streamgate.metrics import TRANSCODE_REALTIME, TRANSCODE_SECONDS

logger = logging.getLogger(__name__)

# Failures that say nothing about the video (streamgate.celery.TRANSIENT: storage, database,
# cache or broker away): the job goes back to the queue and is retried.

# Why a job started again, for the job record (staff) and the creator.
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
        delete_outputs(job.output_prefix)
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
        _fail(job, str(error), kind=ErrorKind.SOURCE)
    except ffmpeg.EncodeFailed as error:
        _fail(job, str(error), exit_code=error.result.exit_code, stderr=error.result.stderr_tail)
    except PackagingError as error:
        _fail(
            job, "Encoding produced incomplete output; it will not be published.", stderr=str(error)
        )
    except Cancelled:
        logger.info("transcode cancelled", extra={"job_id": job_id})
        delete_outputs(job.output_prefix)
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
        if content is not None and content.status != ContentStatus.READY:
            content_status_set(
                content=content, status=ContentStatus.FAILED, error=message, error_kind=kind
            )
        prefix = job.output_prefix
        transaction.on_commit(lambda: delete_outputs(prefix))
    logger.warning("transcode failed", extra={"job_id": str(job.id), "error": message})


def transcode_give_up(*, job_id: str, message: str) -> None:
    """A job whose task ran out of retries (storage kept failing) ends failed."""
    job = TranscodeJob.objects.filter(pk=job_id).first()
    if job is not None and job.state not in FINISHED_STATES:
        TranscodeJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
        _fail(job, message)
