"""Receiving bytes: the offset checked against storage, PATCH bodies appended, the last byte.

A PATCH writes under the upload's write lease (``apps/uploads/lease.py``) at the offset stored,
commits each durable offset and sends progress; the one that stores the last byte completes the
upload and queues its finalisation. Bytes lost for good fail the upload.
"""

import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.content.progress import overall_percent, phase_label
from apps.content.realtime import content_broadcast
from apps.content.services import content_progress_set, content_status_set
from apps.content.storage import StorageUnavailable
from apps.uploads import tasks
from apps.uploads.backends import (
    ChecksumMismatch,
    Durable,
    IncomingMissing,
    StoredBehindOffset,
    store_of,
)
from apps.uploads.exceptions import ChecksumFailed, OffsetMismatch, UploadGone, UploadTooLarge
from apps.uploads.lease import WriteLease, lease_busy, lease_free, lease_wait
from apps.uploads.models import DEAD_STATES, Upload, UploadState
from apps.uploads.protocol import Checksum
from apps.uploads.services.ending import content_of, upload_discard
from apps.uploads.services.outage import storage_unavailable
from streamgate.celery import enqueue_on_commit
from streamgate.metrics import UPLOAD_BYTES, UPLOADS_ACTIVE

logger = logging.getLogger(__name__)


def upload_check_usable(*, upload: Upload) -> Upload:
    """The upload, its offset checked against storage; UploadGone for uploads that cannot take
    bytes or be resumed any more."""
    if upload.state in DEAD_STATES:
        raise UploadGone("This upload was terminated, failed or expired; start a new one.")
    if upload.content_id is None:
        raise UploadGone("This upload's content was deleted; start a new upload.")
    if upload.state == UploadState.RECEIVING and upload.expires_at <= timezone.now():
        raise UploadGone("This upload has expired; start a new one.", reason="expired")
    if upload.state == UploadState.RECEIVING:
        _reconcile(upload)
    return upload


def upload_head(*, upload: Upload) -> Upload:
    """The upload as HEAD reports it. A PATCH still storing what its dropped connection
    delivered is waited for (at most TUS_LOCK_WAIT_SECONDS), so that the offset is the one it
    commits; past that (a PATCH that is really writing) the offset committed so far."""
    lease_wait(upload)
    return upload_check_usable(upload=upload)


def _reconcile(upload: Upload) -> None:
    """After a machine crash the stored bytes can end before the recorded offset: move the
    offset back (when no request is writing), so that the client resends what was lost."""
    try:
        stored = store_of(upload, default_storage).stored_offset(upload)
    except StorageUnavailable as error:
        raise storage_unavailable(error, upload_id=str(upload.id)) from error
    if stored < upload.offset:
        moved = (
            Upload.objects.filter(pk=upload.pk, offset=upload.offset)
            .filter(lease_free())
            .update(offset=stored)
        )
        if moved:
            logger.warning(
                "upload offset moved back to the stored bytes",
                extra={"upload_id": str(upload.id), "recorded": upload.offset, "stored": stored},
            )
            upload.offset = stored


def upload_append(
    *,
    upload: Upload,
    offset: int,
    body: Iterable[bytes],
    content_length: int | None,
    checksum: Checksum | None,
) -> Upload:
    """Append the request body at ``offset`` (which must equal the stored offset) and return
    the upload with its new offset. The last byte queues finalisation.

    A PATCH that still holds the upload (one whose connection just dropped, committing what it
    stored) is waited for, at most TUS_LOCK_WAIT_SECONDS; UploadBusy if it still writes then."""
    if not lease_wait(upload):
        raise lease_busy(upload)
    upload_check_usable(upload=upload)
    if offset != upload.offset:
        raise _offset_mismatch(offset, upload.offset)
    remaining = upload.length - offset
    if content_length is not None and content_length > remaining:
        raise UploadTooLarge(
            f"{content_length} bytes at offset {offset} would go past Upload-Length "
            f"({upload.length}).",
            reason="length",
        )
    if remaining == 0:
        # A retry after the last byte. If the PATCH that stored it died before completing the
        # upload (a database drop between committing the offset and completing), complete it now.
        upload_complete(upload=upload)
        return upload
    if content_length == 0:
        return upload  # nothing to write: an empty PATCH
    return upload_append_leased(
        lease=WriteLease.acquire(upload, offset=offset), body=body, checksum=checksum
    )


def upload_append_claimed(
    *, upload_id: str, owner_id: int, offset: int, content_length: int | None
) -> WriteLease | None:
    """The write lease of ``owner_id``'s upload at ``offset``, taken at once when nothing
    stands in the way (``WriteLease.claim``); None when ``upload_append`` must decide (an
    offset that differs, a lease held, an upload that expired, ended or is full...)."""
    return WriteLease.claim(
        upload_id=upload_id, owner_id=owner_id, offset=offset, content_length=content_length
    )


def upload_append_leased(
    *, lease: WriteLease, body: Iterable[bytes], checksum: Checksum | None
) -> Upload:
    """Append the body at the offset the lease was taken at, committing durable offsets as
    they come and, with the last one, giving the lease up (one UPDATE). The last byte of the
    upload queues its finalisation."""
    upload = lease.upload
    start = upload.offset
    UPLOADS_ACTIVE.inc()
    try:
        store = store_of(upload, default_storage)
        durable = store.append(
            upload,
            lease.guard(_at_most(body, upload.length - start)),
            checksum=checksum,
            on_durable=lambda progress: _commit(upload, lease, progress),
            before_save=lease.check,
        )
        _commit(upload, lease, durable, final=True)
    except ChecksumMismatch as error:
        raise ChecksumFailed(
            f"The {error} checksum of this chunk does not match; the chunk was discarded.",
            reason="checksum",
        ) from error
    except StorageUnavailable as error:
        # The offset recorded is what storage kept (backends/): the client resumes from HEAD.
        raise storage_unavailable(error, upload_id=str(upload.id)) from error
    except StoredBehindOffset as error:
        raise _offset_mismatch(start, error.args[0]) from error
    except IncomingMissing as error:
        _fail(upload, lease, str(error))
        raise UploadGone("This upload's bytes were lost; start a new upload.") from error
    finally:
        lease.release()  # nothing to do once the last commit gave it up
        UPLOADS_ACTIVE.dec()
        UPLOAD_BYTES.inc(max(0, upload.offset - start))  # what was kept, error or not
    if upload.offset == upload.length:
        upload_complete(upload=upload)
    return upload


def _offset_mismatch(claimed: int, stored: int) -> OffsetMismatch:
    return OffsetMismatch(
        f"Upload-Offset {claimed} does not match the {stored} bytes received; "
        "ask HEAD for the offset and resume from there.",
        reason="offset",
    )


def _at_most(body: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The body, refusing (413) a body longer than what the upload still needs."""
    seen = 0
    for block in body:
        seen += len(block)
        if seen > limit:
            raise UploadTooLarge(
                f"The request body goes past Upload-Length; {limit} bytes remained.",
                reason="length",
            )
        yield block


def _commit(upload: Upload, lease: WriteLease, durable: Durable, *, final: bool = False) -> None:
    """Persist the offset (and backend fields) if we still hold the lease, giving the lease up
    with the ``final`` commit; send progress."""
    now = timezone.now()
    fields = {
        "offset": durable.offset,
        "expires_at": now + timedelta(seconds=settings.TUS_EXPIRATION_SECONDS),
        **durable.fields,
    }
    due = (
        durable.offset == upload.length
        or upload.progress_sent_at is None
        or (now - upload.progress_sent_at).total_seconds() >= settings.UPLOAD_PROGRESS_INTERVAL
    )
    if due:
        fields["progress_sent_at"] = now
    if final:
        lease.finish(**fields)
    else:
        lease.renew(**fields)
    for field, value in fields.items():
        setattr(upload, field, value)
    if due and upload.content_id is not None:  # None: the content was deleted meanwhile
        overall = overall_percent("upload", 100 * durable.offset / upload.length)
        content_progress_set(
            content_id=str(upload.content_id),
            progress=int(100 * durable.offset / upload.length),
            overall=overall,
        )
        content_broadcast(
            content_id=upload.content_id,
            message={
                "type": "upload",
                "received": durable.offset,
                "total": upload.length,
                "overall": overall,
                "label": phase_label("upload"),
            },
        )


def upload_complete(*, upload: Upload) -> bool:
    """Mark an upload whose every byte is stored complete and queue its finalisation; nothing
    when it is not receiving or not whole. Called by the PATCH that stores the last byte, by a
    retried PATCH at the end, and by the reaper (the last PATCH died before it got here)."""
    with transaction.atomic():
        moved = Upload.objects.filter(
            pk=upload.pk, state=UploadState.RECEIVING, offset=upload.length
        ).update(state=UploadState.COMPLETE, completed_at=timezone.now())
        if moved:
            upload.state = UploadState.COMPLETE
            enqueue_on_commit(tasks.upload_finalize, str(upload.id))
            logger.info("upload complete", extra={"upload_id": str(upload.id)})
    return bool(moved)


def _fail(upload: Upload, lease: WriteLease, error: str) -> None:
    """The bytes are gone for good: end the upload and give the content back to its creator."""
    with transaction.atomic():
        if not lease.owned().update(state=UploadState.FAILED, error=error):
            return
        content = content_of(upload)
        if content is not None and content.status == ContentStatus.UPLOADING:
            content_status_set(
                content=content,
                status=ContentStatus.DRAFT,
                progress=0,
                error="The upload's bytes were lost on the server; upload the file again.",
            )
        upload_id = upload.id
        transaction.on_commit(lambda: upload_discard(upload_id=upload_id))
    logger.error("upload failed", extra={"upload_id": str(upload.id), "error": error})
