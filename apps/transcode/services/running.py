"""Running one queued job: claim it, execute it, then publish it, fail it or put it back.

The job is claimed with a conditional UPDATE (QUEUED -> RUNNING), runs through
``runner.execute`` under its own storage prefix, and is published in one transaction that points
the content at it. Partial outputs are deleted after commit. A worker told to stop (SIGTERM)
puts the job back in the queue, for its task to requeue the message (apps/transcode/stopping.py).
"""

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.content.storage import StorageUnavailable
from apps.transcode import ffmpeg
from apps.transcode.ladder import UnusableSource
from apps.transcode.models import FINISHED_STATES, JobState, TranscodeJob
from apps.transcode.outage import wait_out
from apps.transcode.packaging import PackagingError
from apps.transcode.probe import NotMedia
from apps.transcode.runner import Cancelled, Chunked, JobRun, execute
from apps.transcode.services.chunking import chunked_start, chunks_work
from apps.transcode.services.finishing import fail_job, publish_job
from apps.transcode.services.outputs import delete_outputs
from apps.transcode.services.reaper import worker_lost
from apps.transcode.services.requesting import time_limits
from apps.transcode.services.workers import is_dead_here, this_worker, worker_gone
from apps.transcode.stopping import WorkerStopping
from streamgate.celery import TRANSIENT

logger = logging.getLogger(__name__)

# Failures that say nothing about the video (streamgate.celery.TRANSIENT: storage, database,
# cache or broker away): the job goes back to the queue and is retried.

# Why a job started again, for the job record (staff) and the creator.
RESTARTED_DATABASE = "Restarted after the database was unavailable."
RESTARTED_STORAGE = "Restarted after storage was unavailable."
RESTARTED_REDIS = "Restarted after Redis (cache and broker) was unavailable."
RESTARTED_SHUTDOWN = "Restarted: the worker encoding it was shut down (a restart or a rollout)."


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
    if job is not None and job.state == JobState.RUNNING and worker_gone(job) and job.chunk_plan:
        # A chunked job's worker died: its chunks are tasks of their own and go on; this task
        # takes the job over and works on the chunks left (chunks_work).
        taken = TranscodeJob.objects.filter(
            pk=job_id, state=JobState.RUNNING, worker=job.worker
        ).update(worker=worker, task_id=task_id, task_retries=task_retries, heartbeat_at=now)
        return TranscodeJob.objects.select_related("content").get(pk=job_id) if taken else None
    if job is not None and job.state == JobState.RUNNING and worker_gone(job):
        # Celery redelivered the task of a worker that died mid-encode: this attempt is over,
        # the next one starts here and now.
        successor = worker_lost(job=job).successor
        if successor is not None:
            return _claim(str(successor.id), worker, task_id=task_id, task_retries=task_retries)
    return None


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
    if job.chunk_plan:
        # A chunked job taken back (its worker died, or the database was away): its chunks and
        # what they published stay; this task goes on with the ones left.
        chunks_work(job_id=job_id, worker=worker, task_id=task_id)
        return TranscodeJob.objects.filter(pk=job_id).first()
    if job.interruption:
        # Started again: what the interrupted run uploaded goes, so nothing half-made remains.
        logger.info(
            "transcode restarted", extra={"job_id": job_id, "interruption": job.interruption}
        )
        delete_outputs(job)
    workdir = Path(settings.TRANSCODE_WORK_DIR) / str(job.id)
    shutil.rmtree(workdir, ignore_errors=True)
    chunked = False
    try:
        outcome = execute(
            JobRun(job=job, worker=worker),
            workdir,
            source_seconds=time_limits(job.content.duration)["time_limit"] + 600,
        )
        if isinstance(outcome, Chunked):
            wait_out(lambda: chunked_start(job, outcome), job_id=job_id, what="chunks")
            chunked = True
        else:
            wait_out(
                lambda: publish_job(
                    job,
                    renditions=outcome.packaged.renditions,
                    duration=outcome.duration,
                    realtime_factor=outcome.realtime_factor,
                    encrypted=outcome.encrypted,
                ),
                job_id=job_id,
                what="publish",
            )
    except (NotMedia, UnusableSource) as error:
        fail_job(job, str(error), kind=ErrorKind.SOURCE)
    except ffmpeg.EncodeFailed as error:
        fail_job(job, str(error), exit_code=error.result.exit_code, stderr=error.result.stderr_tail)
    except PackagingError as error:
        fail_job(
            job, "Encoding produced incomplete output; it will not be published.", stderr=str(error)
        )
    except WorkerStopping:
        # Nothing was published (the stop comes before publishing); the next run deletes what
        # this one may have uploaded (``interruption``) and starts from the beginning.
        logger.warning(
            "transcode stopped for the worker's shutdown; the job goes back to the queue",
            extra={"job_id": job_id},
        )
        if _requeue(job, worker, reason=RESTARTED_SHUTDOWN):
            content_status_set(
                content=job.content, status=ContentStatus.QUEUED, progress=0, restarting=True
            )
        raise
    except Cancelled:
        logger.info("transcode cancelled", extra={"job_id": job_id})
        delete_outputs(job)
    except TRANSIENT as error:
        logger.warning(
            "transcode interrupted; the job goes back to the queue",
            extra={"job_id": job_id, "reason": restart_reason(error)},
            exc_info=True,
        )
        _requeue(job, worker, reason=restart_reason(error))
        raise
    except BaseException as error:  # a time limit, a bug: record it, then let it propagate
        fail_job(job, _unexpected_message(error))
        raise
    finally:
        if not chunked:
            shutil.rmtree(workdir, ignore_errors=True)
    if chunked:  # the chunks' failures are theirs: a chunk goes back to the queue, not the job
        chunks_work(job_id=job_id, worker=worker, task_id=task_id)
    return TranscodeJob.objects.filter(pk=job_id).first()


def _requeue(job: TranscodeJob, worker: str, *, reason: str) -> bool:
    """The job back to QUEUED if this worker still runs it; False if not (or the database is
    away: the task's retry, or the message's next delivery, takes the job back in _claim)."""
    try:
        return bool(
            TranscodeJob.objects.filter(pk=job.pk, state=JobState.RUNNING, worker=worker).update(
                state=JobState.QUEUED, worker="", enqueued_at=timezone.now(), interruption=reason
            )
        )
    except DatabaseError:
        logger.warning("could not requeue the job", extra={"job_id": str(job.pk)}, exc_info=True)
        return False


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
    # A chunked job's folder holds its chunks' folders, each removed by its own run: kept
    # while the job runs, whoever its dispatching worker was.
    running = {
        str(job_id)
        for job_id, job_worker, plan in TranscodeJob.objects.filter(
            pk__in=[name for name in names if len(name) == 36], state=JobState.RUNNING
        ).values_list("id", "worker", "chunk_plan")
        if plan or not is_dead_here(job_worker)
    }
    for name in names - running:
        shutil.rmtree(root / name, ignore_errors=True)


def transcode_give_up(*, job_id: str, message: str) -> None:
    """A job whose task ran out of retries (storage kept failing) ends failed."""
    job = TranscodeJob.objects.filter(pk=job_id).first()
    if job is not None and job.state not in FINISHED_STATES:
        TranscodeJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
        fail_job(job, message)
