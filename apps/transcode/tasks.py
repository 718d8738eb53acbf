"""Transcode tasks (queue "transcode")."""

import logging

from celery import shared_task
from celery.exceptions import Reject

from apps.transcode import services
from apps.transcode.stopping import WorkerStopping
from streamgate.celery import RETRY_TRANSIENT, TRANSIENT

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="apps.transcode.tasks.transcode_job", max_retries=6)
def transcode_job(self, job_id: str) -> str | None:
    """Run one transcode job. Time limits come with each call, scaled to the video's length.

    Safe to receive twice: only a queued job can be claimed (or taken back by a retry of this
    task), and a job whose worker died is ended and replaced by its next attempt. A worker
    told to stop puts the job back in the queue, and its message with it, for another worker.
    """
    try:
        job = _retrying_transient(
            self,
            lambda: services.transcode_run(
                job_id=job_id, task_id=self.request.id or "", task_retries=self.request.retries
            ),
            give_up=lambda message: services.transcode_give_up(job_id=job_id, message=message),
        )
    except WorkerStopping as stopped:
        # acks_late: the message was never acknowledged; back to its queue, as it was.
        raise Reject(f"worker shutting down; job {stopped} requeued", requeue=True) from stopped
    return job.state if job else None


@shared_task(bind=True, name="apps.transcode.tasks.transcode_chunk", max_retries=6)
def transcode_chunk(self, chunk_id: int) -> str | None:
    """Run one chunk of a chunked job (any worker). Safe to receive twice, and after the job
    task ran the chunk itself: only a queued chunk, or one whose worker died, is claimed."""
    chunk = _retrying_transient(
        self,
        lambda: services.transcode_chunk_run(chunk_id=chunk_id, task_id=self.request.id or ""),
        give_up=lambda message: services.transcode_chunk_give_up(
            chunk_id=chunk_id, message=message
        ),
    )
    return chunk.state if chunk else None


def _retrying_transient(task, run, *, give_up):
    """``run()``; when storage, the database or Redis is away, the task is retried later
    (15 s, doubling up to 10 min), and after its last retry ``give_up(message)`` fails it."""
    try:
        return run()
    except TRANSIENT as error:
        if task.request.retries >= task.max_retries:
            away = services.unavailable_dependency(error)
            give_up(f"{away} was unavailable for too long; retry later.")
            raise
        raise task.retry(exc=error, countdown=min(600, 15 * 2**task.request.retries)) from error


@shared_task(name="apps.transcode.tasks.transcode_outputs_prune", **RETRY_TRANSIENT)
def transcode_outputs_prune(content_id: str, keep_job_id: str) -> int:
    """Delete outputs of a content's superseded and failed jobs."""
    return services.transcode_outputs_prune(content_id=content_id, keep_job_id=keep_job_id)


@shared_task(name="apps.transcode.tasks.transcode_reap")
def transcode_reap() -> dict[str, int]:
    """Beat: jobs whose worker died, jobs whose message was lost, contents without a job."""
    return services.transcode_reap()
