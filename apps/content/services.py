"""Every write to Content. A reader finds every way a Content changes in this file."""

import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.content.audit import audit_record
from apps.content.caption_files import (
    MAX_LABEL_LENGTH,
    CaptionInvalid,
    caption_parse,
    label_check,
    language_check,
)
from apps.content.cid import CidBuilder
from apps.content.exceptions import (
    BadGate,
    CaptionExists,
    CaptionRefused,
    ContentGone,
    NotACreator,
    SourceMissing,
)
from apps.content.extensions import GateInvalid, gate_normalize
from apps.content.models import Caption, Content, ContentStatus
from apps.content.progress import PROCESSING_START, QUEUED_START
from apps.content.realtime import content_broadcast
from apps.content.selectors import content_status_message, poster_url, user_is_creator
from apps.content.storage import (
    StorageUnavailable,
    captions_prefix,
    posters_prefix,
    storage_delete_quietly,
    storage_put_file,
    storage_read_chunks,
)
from apps.content.tasks import content_files_delete
from apps.content.webhooks.events import content_data
from apps.content.webhooks.services import webhook_event_emit
from streamgate.celery import enqueue_on_commit
from streamgate.exceptions import Unavailable
from streamgate.outages import REASON, STORAGE, outage_of, outage_recorded, unavailable

logger = logging.getLogger(__name__)

UNCHANGED: Any = object()  # "leave this field as it is", distinct from None (a null gate)
# Statuses whose arrival is a webhook event.
ANNOUNCED_STATUSES = {ContentStatus.READY: "content.ready", ContentStatus.FAILED: "content.failed"}


@transaction.atomic
def content_create(
    *,
    owner: User,
    title: str,
    description: str = "",
    gate: dict[str, Any] | None = None,
) -> Content:
    """A new draft owned by ``owner``, who must be a creator."""
    if not user_is_creator(owner):
        raise NotACreator("Only creators can publish content.", reason="not_a_creator")
    content = Content.objects.create(
        owner=owner, title=title, description=description, gate=content_gate_check(gate=gate)
    )
    if content.gate is not None:
        _gate_changed(content, before=None)
    _announce("content.created", content)
    return content


def _announce(event_type: str, content: Content, **extra: Any) -> None:
    """A webhook event about ``content``, written in the current transaction."""
    webhook_event_emit(
        event_type=event_type,
        owner_id=content.owner_id,
        content_id=content.id,
        data={**content_data(content), **extra},
    )


def content_gate_check(*, gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's normal form; BadGate for a rule that cannot be enforced, which is refused
    when saved. (Forms call it to show the error before ``content_update`` saves.)"""
    try:
        return gate_normalize(gate)
    except GateInvalid as error:
        raise BadGate(
            f"Invalid gate at {error.path}: {error.message}", reason="gate_invalid"
        ) from None


@transaction.atomic
def content_update(
    *,
    content: Content,
    title: str = UNCHANGED,
    description: str = UNCHANGED,
    gate: dict[str, Any] | None = UNCHANGED,
) -> Content:
    """Change the editable fields that are given; status and media fields are not editable."""
    changes: dict[str, Any] = {
        field: value
        for field, value in (("title", title), ("description", description), ("gate", gate))
        if value is not UNCHANGED
    }
    gate_before = None
    if "gate" in changes:
        changes["gate"] = content_gate_check(gate=changes["gate"])
        # As stored, not as given: a form may have set the new rule on this instance already.
        gate_before = Content.objects.filter(pk=content.pk).values_list("gate", flat=True).first()
    for field, value in changes.items():
        setattr(content, field, value)
    content.save(update_fields=[*changes, "updated_at"])
    if "gate" in changes and changes["gate"] != gate_before:
        _gate_changed(content, before=gate_before)
    return content


def _gate_changed(content: Content, *, before: dict[str, Any] | None) -> None:
    """Audit a gate set, changed or removed: who may watch is security-relevant."""
    audit_record(
        event="content.gate.changed",
        target=content,
        details={"owner_id": content.owner_id, "before": before, "after": content.gate},
    )


@transaction.atomic
def content_delete(*, content: Content) -> None:
    """Delete the content; its stored files are removed by a task once the delete commits."""
    content_id = str(content.id)
    _announce("content.deleted", content)
    content.delete()
    enqueue_on_commit(content_files_delete, content_id)


@transaction.atomic
def content_status_set(
    *,
    content: Content,
    status: ContentStatus,
    error: str = "",
    progress: int | None = None,
    error_kind: str = "",
    restarting: bool = False,
) -> Content:
    """Move the content to ``status`` and tell its websocket listeners.

    Writes only the status fields, so a concurrent edit of the title or gate is never undone by a
    stale instance. The overall progress starts again at an upload (0) and at a (re)queued
    attempt; processing never lowers it; ready is 100. ``error_kind`` (ErrorKind) says whether
    a retry can help a failure; ``restarting`` labels a later attempt "Retrying".
    """
    changes: dict[str, Any] = {
        "status": status,
        "error": error,
        "error_kind": error_kind if status == ContentStatus.FAILED else "",
        "updated_at": timezone.now(),
    }
    if progress is not None:
        changes["progress"] = progress
    # Whether this call moves the content into ready or failed (a conditional update: of two
    # calls at once, the second waits for the first's row lock and then finds nothing to move).
    entered = status in ANNOUNCED_STATUSES and bool(
        Content.objects.filter(pk=content.pk).exclude(status=status).update(status=status)
    )
    restart_at = {
        ContentStatus.DRAFT: 0,
        ContentStatus.UPLOADING: 0,
        ContentStatus.QUEUED: QUEUED_START,
        ContentStatus.READY: 100,
    }
    if status in restart_at:
        changes["overall_progress"] = restart_at[status]
    Content.objects.filter(pk=content.pk).update(**changes)
    if status == ContentStatus.PROCESSING:
        Content.objects.filter(pk=content.pk, overall_progress__lt=PROCESSING_START).update(
            overall_progress=PROCESSING_START
        )
    if status in (ContentStatus.PROCESSING, ContentStatus.FAILED):
        changes["overall_progress"] = (
            Content.objects.filter(pk=content.pk).values_list("overall_progress", flat=True).first()
            or 0
        )
    for field, value in changes.items():
        setattr(content, field, value)
    content_broadcast(
        content_id=content.id, message=content_status_message(content, restarting=restarting)
    )
    if entered:
        _announce(ANNOUNCED_STATUSES[status], content)
    return content


@transaction.atomic
def content_source_attach(
    *,
    content: Content,
    path: str,
    size: int,
    sha256: str,
    cid: str,
    duration: float | None,
    width: int | None,
    height: int | None,
) -> Content:
    """Record the content's uploaded original, its digests (sha256, IPFS CID) and what probing
    it found."""
    changes: dict[str, Any] = {
        "source_path": path,
        "source_size": size,
        "source_sha256": sha256,
        "source_cid": cid,
        "duration": duration,
        "width": width,
        "height": height,
        "updated_at": timezone.now(),
    }
    Content.objects.filter(pk=content.pk).update(**changes)
    for field, value in changes.items():
        setattr(content, field, value)
    return content


def content_source_cid(*, content: Content, on_progress: Callable[[], None] | None = None) -> str:
    """The IPFS CID of the content's original. Finalisation stores it with the sha256; a content
    finalised before that gets it here, read once from storage and stored, so it is never read
    again. The read is long (up to the largest upload): call this outside any transaction or
    lock; ``on_progress`` is called after each chunk (to renew a lease). SourceMissing when there
    is no stored original."""
    path, stored = Content.objects.filter(pk=content.pk).values_list(
        "source_path", "source_cid"
    ).first() or ("", "")
    if stored:
        content.source_cid = stored
        return stored
    if not path:
        raise SourceMissing("This content has no uploaded original.", reason="no_source")
    builder = CidBuilder()
    try:
        for chunk in storage_read_chunks(path):
            builder.update(chunk)
            if on_progress is not None:
                on_progress()
    except FileNotFoundError as error:
        raise SourceMissing(
            "The content's original file is missing from storage, so its CID cannot be "
            "computed; upload the file again.",
            reason="source_missing",
        ) from error
    cid = builder.cid()
    # Not if the source was replaced meanwhile: the new one came with its own CID.
    Content.objects.filter(pk=content.pk, source_path=path, source_cid="").update(source_cid=cid)
    content.source_cid = cid
    return cid


def content_progress_set(
    *, content_id: uuid.UUID | str, progress: int, overall: int | None = None
) -> None:
    """Record how far the current stage is (0-100) and, given ``overall``, raise the overall
    progress to it (never lower it); no message: callers send their own."""
    changes: dict[str, Any] = {"progress": max(0, min(100, progress))}
    if overall is not None:
        changes["overall_progress"] = Greatest(
            F("overall_progress"), Value(max(0, min(100, overall)))
        )
    Content.objects.filter(pk=content_id).update(**changes)


@transaction.atomic
def content_poster_set(*, content: Content, path: str) -> Content:
    """Make the stored image at ``path`` the content's poster. A poster chosen earlier (under
    the content's ``posters/`` folder) is deleted after commit; the encoded one stays with its
    job's outputs."""
    previous = (
        Content.objects.select_for_update()
        .filter(pk=content.pk)
        .values_list("poster", flat=True)
        .first()
    )
    Content.objects.filter(pk=content.pk).update(poster=path, updated_at=timezone.now())
    content.poster = path
    if previous and previous != path and previous.startswith(posters_prefix(str(content.id))):
        transaction.on_commit(lambda: storage_delete_quietly(previous))
    content_broadcast(
        content_id=content.id,
        message={"type": "poster", "thumbnail_url": poster_url(content)},
    )
    return content


def caption_create(*, content: Content, data: bytes, language: str, label: str = "") -> Caption:
    """Captions in ``language`` (a BCP 47 tag) for ``content``, from a WebVTT or SRT file
    (converted to WebVTT and stored); ``label`` defaults to the language's name.
    CaptionRefused (400) names what is wrong with the upload; CaptionExists (409) when the
    content has captions in that language already: delete those first, so that a caption's
    id always names the same file; ContentGone (404) when the content was deleted meanwhile."""
    try:
        tag, name = language_check(language)
        label = label_check(label)
        parsed = caption_parse(data)
    except CaptionInvalid as error:
        raise CaptionRefused(error.message, reason=error.reason) from None
    if Caption.objects.filter(content=content, language=tag).exists():
        raise _exists(tag)
    # A language's name can outgrow the column (langcodes names some tags at length).
    caption = Caption(content=content, language=tag, label=label or name[:MAX_LABEL_LENGTH])
    caption.path = f"{captions_prefix(str(content.id))}{caption.id}.vtt"
    # The file first, under its own new name: a row never names a file that is not there.
    try:
        _store_text(caption.path, parsed.vtt)
    except (StorageUnavailable, OSError) as error:
        raise _storage_refused(error, content_id=str(content.id)) from error
    try:
        with transaction.atomic():
            caption.save(force_insert=True)
    except IntegrityError:
        # The same language uploaded at the same moment, or the content deleted meanwhile.
        _file_delete(caption.path)
        if not Content.objects.filter(pk=content.pk).exists():
            raise ContentGone("No such content.", reason="not_found") from None
        raise _exists(tag) from None
    logger.info(
        "caption added",
        extra={"content": str(content.id), "caption": str(caption.id), "cues": parsed.cues},
    )
    return caption


def _storage_refused(error: Exception, *, content_id: str) -> Unavailable:
    """The 503 for storage that did not take the file (logged and counted once): a disk full or
    read-only (Retry-After 30 s), else storage that did not answer or refused (5 s)."""
    outage_recorded(STORAGE, error, action="refused", content_id=content_id)
    if outage_of(error) == STORAGE:
        return unavailable(STORAGE)
    return Unavailable(
        "Storage did not take the caption file; try again shortly.",
        reason=REASON,
        dependency=STORAGE,
    )


def _exists(tag: str) -> CaptionExists:
    return CaptionExists(
        f"This content already has captions in {tag}; delete them first to upload new ones.",
        reason="caption_exists",
    )


@transaction.atomic
def caption_delete(*, caption: Caption) -> None:
    """Remove the captions; their file goes once the delete commits."""
    path = caption.path
    caption.delete()
    transaction.on_commit(lambda: _file_delete(path))


def _store_text(path: str, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".vtt", delete=False) as out:
        out.write(text)
    try:
        storage_put_file(
            out.name, path, content_type="text/vtt", cache_control="private, max-age=60"
        )
    finally:
        os.unlink(out.name)


def _file_delete(path: str) -> None:
    """Remove a caption file no row names any more. A file left behind (storage away) is only
    space: it is never served, and the content's deletion removes its whole captions folder."""
    try:
        default_storage.delete(path)
    except Exception as error:  # noqa: BLE001 - the delete itself succeeded
        logger.warning("caption file not deleted", extra={"path": path, "error": repr(error)})
