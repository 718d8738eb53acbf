"""Deleting what jobs wrote to storage: a cancelled or failed job's, a superseded job's."""

import logging

from apps.content.storage import StorageUnavailable, storage_delete_prefix
from apps.transcode.models import TranscodeJob
from apps.transcode.services.encrypting import job_public_prefix

logger = logging.getLogger(__name__)


def delete_outputs(job: TranscodeJob) -> None:
    """Everything the job wrote: its folder, and its encrypted public files."""
    for prefix in (job.output_prefix, job_public_prefix(job)):
        try:
            storage_delete_prefix(prefix)
        except StorageUnavailable:
            logger.warning("could not delete outputs yet", extra={"prefix": prefix}, exc_info=True)


def transcode_outputs_prune(*, content_id: str, keep_job_id: str) -> int:
    """Delete the outputs of every other job of the content (superseded or failed)."""
    removed = 0
    for job in TranscodeJob.objects.filter(content_id=content_id).exclude(pk=keep_job_id):
        removed += storage_delete_prefix(job.output_prefix)
        removed += storage_delete_prefix(job_public_prefix(job))
    return removed
