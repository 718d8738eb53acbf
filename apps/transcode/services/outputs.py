"""Deleting what jobs wrote to storage: a cancelled or failed job's, a superseded job's."""

import logging

from apps.content.storage import StorageUnavailable, storage_delete_prefix
from apps.transcode.models import TranscodeJob

logger = logging.getLogger(__name__)


def delete_outputs(prefix: str) -> None:
    try:
        storage_delete_prefix(prefix)
    except StorageUnavailable:
        logger.warning("could not delete outputs yet", extra={"prefix": prefix}, exc_info=True)


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
