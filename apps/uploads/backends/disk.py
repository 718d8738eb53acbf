"""The local disk byte store: bytes appended to ``<media>/incoming/<id>``, moved when complete.

It never holds more than one block in memory, and records as the offset exactly what the
kernel took, so a disk that fills up midway loses no acknowledged byte.
"""

import os
import time
from contextlib import suppress
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from apps.content.storage import StorageUnavailable
from apps.uploads.backends.base import (
    BeforeSave,
    ChecksumMismatch,
    Durable,
    IncomingMissing,
    OnDurable,
    StoredBehindOffset,
    disk_errors,
)
from apps.uploads.models import Upload, UploadBackend
from streamgate.outages import DISK_ERRNOS


class DiskStore:
    """Bytes appended to ``<media>/incoming/<id>``, moved to ``sources/…`` when complete."""

    kind = UploadBackend.DISK
    splices = True  # takes Spliced blocks: the kernel moves them from a socket to the file

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def _incoming(self, upload: Upload) -> str:
        return self.storage.path(upload.incoming_path)

    def begin(self, upload: Upload) -> dict[str, Any]:
        path = self._incoming(upload)
        with disk_errors("create the upload's file"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb"):
                pass
        return {}

    def append(self, upload, blocks, *, checksum, on_durable, before_save) -> Durable:
        path = self._incoming(upload)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError as error:
            raise IncomingMissing(
                f"the received bytes of upload {upload.id} are missing"
            ) from error
        if size < upload.offset:
            # Fewer bytes on disk than recorded (a machine crash): never pad with zeros.
            raise StoredBehindOffset(size)
        start = upload.offset  # on_durable moves upload.offset as we go
        with disk_errors("open the upload's file"):
            fd = os.open(path, os.O_WRONLY)
        try:
            return self._write(
                fd,
                start,
                blocks,
                checksum=checksum,
                on_durable=on_durable,
                before_save=before_save,
            )
        finally:
            os.close(fd)

    @staticmethod
    def _write(
        fd: int, start: int, blocks, *, checksum, on_durable: OnDurable, before_save: BeforeSave
    ) -> Durable:
        """Write ``blocks`` at ``start`` with plain write(2) calls, so that ``written`` counts
        exactly what the kernel took: when the disk fills up or turns read-only midway, the
        offset recorded is the bytes stored, no more and no less (none, with a checksum: the
        chunk is all or nothing), and StorageUnavailable says why. A Spliced block (never sent
        with a checksum) is moved by the kernel a pipe's worth at a time, the lease checked
        (``before_save``) and the offset committed between them as for any block."""
        commit_bytes = settings.TUS_DISK_COMMIT_BYTES
        commit_seconds = settings.TUS_DISK_COMMIT_SECONDS
        hasher = checksum.new_hasher() if checksum else None
        written = since_commit = 0
        committed_at = time.monotonic()
        try:
            # Bytes past the recorded offset were written but never acknowledged (the writer
            # died before committing): they are dropped, and the client resends them.
            os.ftruncate(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            for block in blocks:
                if hasattr(block, "splice_to"):
                    while len(block) and not block.ended:  # ended early: client, idle, drain
                        before = block.moved
                        try:
                            # Up to the next commit; at least a step, whatever the setting.
                            block.splice_to(fd, max(commit_bytes - since_commit, 1 << 20))
                        finally:
                            written += block.moved - before
                            since_commit += block.moved - before
                        if since_commit >= commit_bytes or (
                            time.monotonic() - committed_at >= commit_seconds
                        ):
                            on_durable(Durable(start + written))
                            since_commit = 0
                            committed_at = time.monotonic()
                        before_save()
                    continue
                view = memoryview(block)
                while view:
                    taken = os.write(fd, view)
                    written += taken
                    since_commit += taken
                    view = view[taken:]
                if hasher:
                    hasher.update(block)
                elif since_commit >= commit_bytes or (
                    time.monotonic() - committed_at >= commit_seconds
                ):
                    # The offset moves once the bytes are in the kernel: a crash of this
                    # process loses none of them. Bytes and seconds bound what such a crash
                    # mid-PATCH makes the client send again. (After a power loss the file may
                    # be shorter than the offset; stored_offset() notices and says so.)
                    on_durable(Durable(start + written))
                    since_commit = 0
                    committed_at = time.monotonic()
            if hasher and hasher.digest() != checksum.digest:
                os.ftruncate(fd, start)
                raise ChecksumMismatch(checksum.algorithm)
        except OSError as error:
            if error.errno not in DISK_ERRNOS:
                raise
            if hasher:
                with suppress(OSError):  # else the next PATCH truncates them
                    os.ftruncate(fd, start)
            elif since_commit:
                on_durable(Durable(start + written))  # what the disk took is kept
            raise StorageUnavailable(f"disk: {error.strerror}") from error
        return Durable(start + written)

    def stored_offset(self, upload: Upload) -> int:
        try:
            return min(upload.offset, os.path.getsize(self._incoming(upload)))
        except FileNotFoundError:
            return 0

    def assemble(self, upload: Upload) -> None:
        incoming, target = self._incoming(upload), self.storage.path(upload.source_path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(incoming):
            os.replace(incoming, target)
        elif not (os.path.exists(target) and os.path.getsize(target) == upload.length):
            raise IncomingMissing(f"the received bytes of upload {upload.id} are missing")

    def discard(self, upload: Upload) -> None:
        with suppress(FileNotFoundError), disk_errors("delete the upload's file"):
            os.remove(self._incoming(upload))
