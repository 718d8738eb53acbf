"""Content housekeeping tasks (queue "default")."""

import logging

from celery import shared_task

from apps.content.storage import (
    StorageUnavailable,
    renditions_prefix,
    source_prefix,
    storage_delete_prefix,
)

logger = logging.getLogger(__name__)


@shared_task(
    name="apps.content.tasks.content_files_delete",
    autoretry_for=(StorageUnavailable,),
    retry_backoff=5,
    retry_jitter=True,
    max_retries=8,
)
def content_files_delete(content_id: str) -> int:
    """Remove a deleted content's source and renditions from storage. Safe to run twice."""
    removed = sum(
        storage_delete_prefix(prefix)
        for prefix in (source_prefix(content_id), renditions_prefix(content_id))
    )
    logger.info("content files deleted", extra={"content_id": content_id, "files": removed})
    return removed
