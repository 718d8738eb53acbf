"""Upload tasks (queue "uploads")."""

from celery import shared_task

from apps.content.storage import StorageUnavailable
from apps.uploads.finalize import upload_finalize as finalize
from apps.uploads.finalize import uploads_reap as reap


@shared_task(
    name="apps.uploads.tasks.upload_finalize",
    autoretry_for=(StorageUnavailable,),
    retry_backoff=10,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=3 * 3600,  # hashing and probing a 20 GiB file from S3 takes a while
    time_limit=3 * 3600 + 300,
)
def upload_finalize(upload_id: str) -> str | None:
    """Assemble, hash and check a complete upload; queue or fail its content."""
    upload = finalize(upload_id=upload_id)
    return upload.state if upload else None


@shared_task(
    name="apps.uploads.tasks.uploads_reap",
    autoretry_for=(StorageUnavailable,),
    max_retries=3,
    retry_backoff=30,
)
def uploads_reap() -> dict[str, int]:
    """Beat: discard expired and orphaned uploads, resend lost finalisations."""
    return reap()
