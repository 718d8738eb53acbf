"""Every write to an upload while it receives bytes: create, append (PATCH), terminate.
Finalisation and the reaper live in ``finalize.py``; the write lease in ``lease.py``.

State changes are claimed with conditional UPDATEs (the lease, RECEIVING -> TERMINATED, …) before
anything irreversible happens, so a PATCH, a termination, the reaper and finalisation never act
on the same upload at once; bytes of an upload that ended are deleted after the claim, and
``discarded_at`` records it (the reaper retries deletions that failed).
"""

import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.content.exceptions import NotACreator
from apps.content.models import Content, ContentStatus
from apps.content.realtime import content_broadcast
from apps.content.selectors import user_is_creator
from apps.content.services import content_progress_set, content_status_set
from apps.content.storage import StorageUnavailable
from apps.uploads import tasks
from apps.uploads.backends import (
    ChecksumMismatch,
    Durable,
    IncomingMissing,
    StoredBehindOffset,
    store_for,
    store_of,
)
from apps.uploads.exceptions import (
    BadUploadRequest,
    ChecksumFailed,
    OffsetMismatch,
    UploadGone,
    UploadNotFound,
    UploadTooLarge,
)
from apps.uploads.filenames import sanitize_filename
from apps.uploads.lease import WriteLease, lease_busy, lease_free, lease_wait
from apps.uploads.models import DEAD_STATES, Upload, UploadState
from apps.uploads.protocol import Checksum, ProtocolError, parse_metadata
from apps.uploads.selectors import storage_used_by, upload_active_for_content
from streamgate.celery import enqueue_on_commit
from streamgate.exceptions import Conflict, Unavailable
from streamgate.outages import REASON, STORAGE, outage_of, outage_recorded, unavailable

logger = logging.getLogger(__name__)

ATTACHABLE = (ContentStatus.DRAFT, ContentStatus.FAILED, ContentStatus.UPLOADING)


def upload_create(*, owner: User, length: int, metadata_header: str | None) -> Upload:
    """Create an upload of ``length`` bytes for a new content, or for the draft named by the
    ``content_id`` metadata. The content becomes ``uploading``."""
    if not user_is_creator(owner):
        raise NotACreator("Only creators can upload.", reason="not_a_creator")
    if length == 0:
        raise BadUploadRequest("The file is empty.", reason="empty")
    if length > settings.TUS_MAX_SIZE:
        raise UploadTooLarge(
            f"The file is {length} bytes; the largest upload allowed is {settings.TUS_MAX_SIZE}.",
            reason="max_size",
        )
    try:
        metadata = parse_metadata(metadata_header, max_bytes=settings.TUS_METADATA_MAX_BYTES)
    except ProtocolError as error:
        raise BadUploadRequest(str(error), reason="metadata") from error
    filename = sanitize_filename(metadata.get("filename"))
    store = store_for(default_storage)
    with transaction.atomic():
        # One creation per user at a time, so that parallel POSTs cannot all pass the quota.
        # FOR NO KEY UPDATE: creations wait for each other, key checks on the user (a row that
        # references it, written elsewhere) do not wait for the creation.
        get_user_model().objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
        used = storage_used_by(user=owner)
        if used + length > settings.TUS_USER_QUOTA:
            raise UploadTooLarge(
                f"This upload would bring your storage to {used + length} bytes, over your "
                f"quota of {settings.TUS_USER_QUOTA}. Delete content you no longer need.",
                reason="quota",
            )
        content = _content_for(owner=owner, metadata=metadata, filename=filename)
        upload = Upload(
            id=uuid.uuid4(),
            owner=owner,
            content=content,
            backend=store.kind,
            length=length,
            filename=filename,
            metadata=metadata,
            metadata_header=metadata_header or "",
            source_path=f"sources/{content.id}/{filename}",
            expires_at=timezone.now() + timedelta(seconds=settings.TUS_EXPIRATION_SECONDS),
        )
        try:
            for field, value in store.begin(upload).items():
                setattr(upload, field, value)
        except StorageUnavailable as error:
            raise storage_unavailable(error, upload_id=str(upload.id)) from error
        try:
            upload.save(force_insert=True)
            content_status_set(content=content, status=ContentStatus.UPLOADING, progress=0)
        except BaseException:
            store.discard(upload)  # no row points at those bytes: do not leave them behind
            raise
    logger.info("upload created", extra={"upload_id": str(upload.id), "length": length})
    return upload


def _content_for(*, owner: User, metadata: dict[str, str], filename: str) -> Content:
    title = (metadata.get("title") or "").strip()[:200]
    raw_id = metadata.get("content_id")
    if not raw_id:
        return Content.objects.create(
            owner=owner, title=title or filename.rsplit(".", 1)[0][:200] or "Untitled upload"
        )
    try:
        content_id = uuid.UUID(raw_id)
    except ValueError as error:
        raise BadUploadRequest("content_id is not a valid id.", reason="metadata") from error
    content = Content.objects.select_for_update().filter(pk=content_id, owner_id=owner.pk).first()
    if content is None:
        raise UploadNotFound("You have no content with this content_id.", reason="content")
    active = upload_active_for_content(content=content)
    if content.status not in ATTACHABLE or (active and not _supersede(active)):
        raise Conflict(
            f"This content is {content.status} and has an upload under way; only drafts and "
            "failed content take a new upload.",
            reason="content_busy",
        )
    if title:
        content.title = title
        content.save(update_fields=["title", "updated_at"])
    return content


def _supersede(upload: Upload) -> bool:
    """End an unfinished upload nobody is writing to, so that a new one can replace it (a
    client that lost the Location of its first attempt starts over). False if it is busy."""
    ended = (
        Upload.objects.filter(pk=upload.pk, state=UploadState.RECEIVING)
        .filter(lease_free())
        .update(state=UploadState.TERMINATED, error="Replaced by a new upload.")
    )
    if ended:
        upload_id = upload.id
        transaction.on_commit(lambda: upload_discard(upload_id=upload_id))
    return bool(ended)


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
    lease = WriteLease.acquire(upload, offset=offset)
    upload = lease.upload
    try:
        store = store_of(upload, default_storage)
        durable = store.append(
            upload,
            lease.guard(_at_most(body, remaining)),
            checksum=checksum,
            on_durable=lambda progress: _commit(upload, lease, progress),
            before_save=lease.check,
        )
        _commit(upload, lease, durable)
    except ChecksumMismatch as error:
        raise ChecksumFailed(
            f"The {error} checksum of this chunk does not match; the chunk was discarded.",
            reason="checksum",
        ) from error
    except StorageUnavailable as error:
        # The offset recorded is what storage kept (backends/): the client resumes from HEAD.
        raise storage_unavailable(error, upload_id=str(upload.id)) from error
    except StoredBehindOffset as error:
        raise _offset_mismatch(offset, error.args[0]) from error
    except IncomingMissing as error:
        _fail(upload, lease, str(error))
        raise UploadGone("This upload's bytes were lost; start a new upload.") from error
    finally:
        lease.release()
    if upload.offset == upload.length:
        upload_complete(upload=upload)
    return upload


def storage_unavailable(error: StorageUnavailable, *, upload_id: str) -> Unavailable:
    """The 503 for storage that failed (logged and counted once): a local disk that is full or
    read-only (someone must act: Retry-After 30 s), else storage that did not answer (5 s)."""
    outage_recorded(STORAGE, error, action="refused", upload_id=upload_id)
    if outage_of(error) == STORAGE:
        return unavailable(STORAGE)
    return Unavailable(
        "Storage is unavailable; try again shortly.", reason=REASON, dependency=STORAGE
    )


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


def _commit(upload: Upload, lease: WriteLease, durable: Durable) -> None:
    """Persist the offset (and backend fields) if we still hold the lease; send progress."""
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
    lease.renew(**fields)
    for field, value in fields.items():
        setattr(upload, field, value)
    if due and upload.content_id is not None:  # None: the content was deleted meanwhile
        content_progress_set(
            content_id=str(upload.content_id),
            progress=int(100 * durable.offset / upload.length),
        )
        content_broadcast(
            content_id=upload.content_id,
            message={"type": "upload", "received": durable.offset, "total": upload.length},
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


def _content_of(upload: Upload) -> Content | None:
    """The upload's content, or None once it was deleted (the foreign key is then null)."""
    if upload.content_id is None:
        return None
    return Content.objects.filter(pk=upload.content_id).first()


def _fail(upload: Upload, lease: WriteLease, error: str) -> None:
    """The bytes are gone for good: end the upload and give the content back to its creator."""
    with transaction.atomic():
        if not lease.owned().update(state=UploadState.FAILED, error=error):
            return
        content = _content_of(upload)
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
        content = _content_of(upload)
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
