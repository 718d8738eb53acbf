"""Creating an upload: the creator's checks, the size and quota checks, and its content.

An upload is created for a new content, or for a draft named by its ``content_id`` metadata; an
unfinished upload nobody writes to is superseded by the new one. Creations of one user wait for
each other, so that parallel POSTs cannot all pass the quota.
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.content.exceptions import NotACreator
from apps.content.models import Content, ContentStatus
from apps.content.selectors import user_is_creator
from apps.content.services import content_status_set
from apps.content.storage import StorageUnavailable
from apps.uploads.backends import store_for
from apps.uploads.exceptions import BadUploadRequest, UploadNotFound, UploadTooLarge
from apps.uploads.filenames import sanitize_filename
from apps.uploads.lease import lease_free
from apps.uploads.models import Upload, UploadState
from apps.uploads.protocol import ProtocolError, parse_metadata
from apps.uploads.selectors import storage_used_by, upload_active_for_content
from apps.uploads.services.ending import upload_discard
from apps.uploads.services.outage import storage_unavailable
from streamgate.exceptions import Conflict

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
