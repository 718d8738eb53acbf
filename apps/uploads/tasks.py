"""Upload tasks (queue "uploads")."""

from celery import shared_task

from apps.uploads import finalize
from streamgate.celery import RETRY_TRANSIENT


@shared_task(
    bind=True,
    name="apps.uploads.tasks.upload_finalize",
    **RETRY_TRANSIENT,
    soft_time_limit=3 * 3600,  # hashing and probing a 20 GiB file from S3 takes a while
    time_limit=3 * 3600 + 300,
)
def upload_finalize(self, upload_id: str) -> str | None:
    """Assemble, hash and check a complete upload; queue or fail its content. Its retries
    (same task id) take its claim back at once."""
    upload = finalize.upload_finalize(upload_id=upload_id, token=self.request.id)
    return upload.state if upload else None


@shared_task(name="apps.uploads.tasks.uploads_reap", **RETRY_TRANSIENT)
def uploads_reap() -> dict[str, int]:
    """Beat: discard expired and orphaned uploads, resend lost finalisations."""
    return finalize.uploads_reap()
