"""Content housekeeping tasks (queue "default")."""

import logging

from celery import shared_task

from apps.content.audit import audit_purge as purge
from apps.content.outbox import outbox_relay as relay
from apps.content.storage import (
    captions_prefix,
    public_prefix,
    renditions_prefix,
    source_prefix,
    storage_delete_prefix,
)
from apps.content.webhooks import tasks as webhook_tasks  # noqa: F401 - registers them
from streamgate.celery import RETRY_TRANSIENT

logger = logging.getLogger(__name__)


@shared_task(name="apps.content.tasks.content_files_delete", **RETRY_TRANSIENT)
def content_files_delete(content_id: str) -> int:
    """Remove a deleted content's source, renditions, captions and public media from storage.
    Safe to run twice."""
    prefixes = (
        source_prefix(content_id),
        renditions_prefix(content_id),
        captions_prefix(content_id),
        public_prefix(content_id),
    )
    removed = sum(storage_delete_prefix(prefix) for prefix in prefixes)
    logger.info("content files deleted", extra={"content_id": content_id, "files": removed})
    return removed


@shared_task(name="apps.content.tasks.outbox_relay", ignore_result=True)
def outbox_relay() -> dict[str, int]:
    """Beat: send the tasks that committed while the broker was away."""
    return relay()


@shared_task(name="apps.content.tasks.audit_purge", ignore_result=True)
def audit_purge() -> int:
    """Beat: delete audit rows older than AUDIT_RETENTION_DAYS (the retention purge)."""
    deleted = purge()
    logger.info("audit rows purged", extra={"rows": deleted})
    return deleted
