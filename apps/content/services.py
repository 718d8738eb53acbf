"""Every write to Content. A reader finds every way a Content changes in this file."""

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.content.cid import CidBuilder
from apps.content.exceptions import BadGate, NotACreator, SourceMissing
from apps.content.extensions import GateInvalid, gate_normalize
from apps.content.models import Content, ContentStatus
from apps.content.progress import PROCESSING_START, QUEUED_START
from apps.content.realtime import content_broadcast
from apps.content.selectors import content_status_message, poster_url, user_is_creator
from apps.content.storage import posters_prefix, storage_delete_quietly, storage_read_chunks
from apps.content.tasks import content_files_delete
from streamgate.celery import enqueue_on_commit

UNCHANGED: Any = object()  # "leave this field as it is", distinct from None (a null gate)


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
    return Content.objects.create(
        owner=owner, title=title, description=description, gate=content_gate_check(gate=gate)
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
    if "gate" in changes:
        changes["gate"] = content_gate_check(gate=changes["gate"])
    for field, value in changes.items():
        setattr(content, field, value)
    content.save(update_fields=[*changes, "updated_at"])
    return content


@transaction.atomic
def content_delete(*, content: Content) -> None:
    """Delete the content; its stored files are removed by a task once the delete commits."""
    content_id = str(content.id)
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
