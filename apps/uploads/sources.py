"""Accepting a stored original as a content's source: hash it, check it is a video, attach it.

Used by upload finalisation and by ``manage.py ingest``.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction

from apps.content.cid import CidBuilder
from apps.content.models import Content, ContentStatus
from apps.content.services import content_source_attach, content_status_set
from apps.content.signals import source_ready
from apps.content.status import ErrorKind
from apps.content.storage import storage_open_seekable, storage_read_chunks
from apps.transcode.probe import MediaInfo, NotMedia, probe, require_video


@dataclass(frozen=True)
class SourceReport:
    path: str
    sha256: str
    cid: str  # IPFS CIDv1 as kubo computes it, for registering and pinning without a re-read
    size: int
    info: MediaInfo | None
    problem: str | None  # why it cannot be used, for the creator; None when it can


def source_inspect(path: str, *, keep_alive: Callable[[], None] | None = None) -> SourceReport:
    """Hash the stored file and compute its IPFS CID in one streamed read, then probe it.
    ``keep_alive`` is called after every chunk read (a caller's lease renewal); what it raises
    stops the read."""
    hasher, cid, size = hashlib.sha256(), CidBuilder(), 0
    for chunk in storage_read_chunks(path):
        hasher.update(chunk)
        cid.update(chunk)
        size += len(chunk)
        if keep_alive:
            keep_alive()
    try:
        with storage_open_seekable(path) as handle:
            info, problem = require_video(probe(handle)), None
    except NotMedia as error:
        info, problem = None, str(error)
    return SourceReport(
        path=path,
        sha256=hasher.hexdigest(),
        cid=cid.cid(),
        size=size,
        info=info,
        problem=problem,
    )


def source_attach(*, content: Content, report: SourceReport) -> Content:
    """Make the inspected file the content's source (replacing an older one), then queue the
    content for encoding, or fail it with the report's problem. Call inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("source_attach must run inside a transaction")
    content = Content.objects.select_for_update().get(pk=content.pk)
    if content.source_path and content.source_path != report.path:
        default_storage.delete(content.source_path)
    width, height = report.info.display_size if report.info else (None, None)
    content_source_attach(
        content=content,
        path=report.path,
        size=report.size,
        sha256=report.sha256,
        cid=report.cid,
        duration=report.info.duration if report.info else None,
        width=width,
        height=height,
    )
    if report.problem:
        content_status_set(
            content=content,
            status=ContentStatus.FAILED,
            error=report.problem,
            progress=0,
            error_kind=ErrorKind.SOURCE,
        )
    else:
        content_status_set(content=content, status=ContentStatus.QUEUED, progress=0)
        content_id = str(content.id)
        transaction.on_commit(lambda: source_ready.send(sender=Content, content_id=content_id))
    return content
