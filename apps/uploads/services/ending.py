"""Ending an upload: termination (the tus extension), and deleting the bytes of ended uploads.

Termination is claimed with a conditional UPDATE (RECEIVING -> TERMINATED, only when no request
holds the write lease) before any byte is deleted; ``discarded_at`` records the deletion, which
the reaper retries when it failed.
"""

import logging
import uuid

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.content.storage import StorageUnavailable
from apps.uploads.backends import store_of
from apps.uploads.exceptions import UploadGone
from apps.uploads.lease import lease_busy, lease_free, lease_wait
from apps.uploads.models import DEAD_STATES, Upload, UploadState
from streamgate.exceptions import Conflict

logger = logging.getLogger(__name__)


def content_of(upload: Upload) -> Content | None:
    """The upload's content, or None once it was deleted (the foreign key is then null)."""
    if upload.content_id is None:
        return None
    return Content.objects.filter(pk=upload.content_id).first()


def upload_terminate(*, upload: Upload) -> None:
    """End the upload (termination extension) and delete its bytes; its content returns to
    draft. Refused while a PATCH writes (409, after waiting as ``upload_append`` does) and
    once the file is complete (409)."""
    lease_wait(upload)
    if upload.state in DEAD_STATES:
        raise UploadGone("This upload was already terminated, failed or expired.")
    if upload.state != UploadState.RECEIVING:
        raise Conflict(
            "This upload is complete and its file belongs to the content now; "
            "delete the content instead.",
            reason="complete",
        )
    with transaction.atomic():
        ended = (
            Upload.objects.filter(pk=upload.pk, state=UploadState.RECEIVING)
            .filter(lease_free())
            .update(state=UploadState.TERMINATED, lock_token="", lock_expires_at=None)
        )
        if not ended:
            upload.refresh_from_db()
            if upload.state == UploadState.RECEIVING:
                raise lease_busy(upload)
            raise Conflict("This upload was completed meanwhile.", reason="complete")
        content = content_of(upload)
        if content is not None and content.status == ContentStatus.UPLOADING:
            content_status_set(content=content, status=ContentStatus.DRAFT, progress=0)
    logger.info("upload terminated", extra={"upload_id": str(upload.id)})
    try:
        upload_discard(upload_id=upload.id)
    except StorageUnavailable:
        logger.warning(
            "termination left bytes behind; the reaper retries",
            extra={"upload_id": str(upload.id)},
            exc_info=True,
        )


def upload_discard(*, upload_id: uuid.UUID) -> None:
    """Delete the incoming bytes of an upload that ended; safe to repeat."""
    upload = Upload.objects.filter(
        pk=upload_id, discarded_at__isnull=True, state__in=DEAD_STATES
    ).first()
    if upload is None:
        return
    store_of(upload, default_storage).discard(upload)
    Upload.objects.filter(pk=upload.pk).update(discarded_at=timezone.now())
