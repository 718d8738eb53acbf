"""Where received bytes go: the boundary to local disk and to S3 multipart uploads.

Both backends take the request body as an iterator of byte blocks and never hold more than one
block (disk) or one part, buffered in a temporary file (S3), so memory does not grow with the
size of a chunk or of the file. They report durable progress through ``on_durable`` so that the
service can persist the offset as it goes; nothing is reported before it is stored for good.
"""

import logging
import math
import mimetypes
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage

from apps.content.storage import StorageUnavailable, is_s3
from apps.uploads.models import Upload, UploadBackend
from apps.uploads.protocol import Checksum
from streamgate.outages import DISK_ERRNOS

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
S3_MIN_PART = 5 * MIB
S3_MAX_PARTS = 10_000


class ChecksumMismatch(Exception):
    """The chunk's digest differs from Upload-Checksum; the chunk was discarded."""


class IncomingMissing(Exception):
    """The received bytes are gone (disk wiped, multipart aborted): the upload cannot finish."""


class StoredBehindOffset(Exception):
    """Storage holds fewer bytes than the recorded offset; HEAD will report the real number."""


@dataclass
class Durable:
    """Bytes up to ``offset`` are stored for good; ``fields`` are Upload fields to persist."""

    offset: int
    fields: dict[str, Any] = field(default_factory=dict)


OnDurable = Callable[[Durable], None]
BeforeSave = Callable[[], None]


class ByteStore(Protocol):
    kind: str

    def begin(self, upload: Upload) -> dict[str, Any]: ...

    def append(
        self,
        upload: Upload,
        blocks: Iterable[bytes],
        *,
        checksum: Checksum | None,
        on_durable: OnDurable,
        before_save: BeforeSave,
    ) -> Durable:
        """Store ``blocks`` after ``upload.offset``; call ``before_save`` before any write that
        is not one of ``blocks`` (a part, a tail), so a writer that lost its lease stops."""
        ...

    def stored_offset(self, upload: Upload) -> int: ...

    def assemble(self, upload: Upload) -> None: ...

    def discard(self, upload: Upload) -> None: ...


class DiskStore:
    """Bytes appended to ``<media>/incoming/<id>``, moved to ``sources/…`` when complete."""

    kind = UploadBackend.DISK

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def _incoming(self, upload: Upload) -> str:
        return self.storage.path(upload.incoming_path)

    def begin(self, upload: Upload) -> dict[str, Any]:
        path = self._incoming(upload)
        with _disk_errors("create the upload's file"):
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
        with _disk_errors("open the upload's file"):
            fd = os.open(path, os.O_WRONLY)
        try:
            return self._write(fd, start, blocks, checksum=checksum, on_durable=on_durable)
        finally:
            os.close(fd)

    @staticmethod
    def _write(fd: int, start: int, blocks, *, checksum, on_durable: OnDurable) -> Durable:
        """Write ``blocks`` at ``start`` with plain write(2) calls, so that ``written`` counts
        exactly what the kernel took: when the disk fills up or turns read-only midway, the
        offset recorded is the bytes stored, no more and no less (none, with a checksum: the
        chunk is all or nothing), and StorageUnavailable says why."""
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
        with suppress(FileNotFoundError), _disk_errors("delete the upload's file"):
            os.remove(self._incoming(upload))


class S3Store:
    """An S3 multipart upload straight to the source key.

    Parts are at least 5 MiB (S3's minimum) and are assembled in a temporary file. Bytes that do
    not fill a part when a PATCH ends are kept as a small ``incoming/<id>.tail`` object and
    prepended to the next PATCH, so any web process (or one restarted) can continue the upload.
    """

    kind = UploadBackend.S3

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def client(self):
        return self.storage.connection.meta.client

    def _key(self, name: str) -> str:
        return self.storage._normalize_name(name)

    def _tail_key(self, upload: Upload, start: int) -> str:
        """The unfinished part that begins at byte ``start``. Keyed by its start so that a
        writer that lost its lease cannot overwrite its successor's tail with other bytes."""
        return self._key(f"{upload.incoming_path}.tail-{start}")

    def _tail_keys(self, upload: Upload) -> list[str]:
        listed = self.client.list_objects_v2(
            Bucket=self.storage.bucket_name, Prefix=self._key(f"{upload.incoming_path}.tail-")
        )
        return [item["Key"] for item in listed.get("Contents", [])]

    def begin(self, upload: Upload) -> dict[str, Any]:
        content_type = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        with _s3_errors("create multipart upload"):
            created = self.client.create_multipart_upload(
                Bucket=self.storage.bucket_name,
                Key=self._key(upload.source_path),
                ContentType=content_type,
            )
        return {"s3_upload_id": created["UploadId"], "part_size": s3_part_size(upload.length)}

    def append(self, upload, blocks, *, checksum, on_durable, before_save) -> Durable:
        hasher = checksum.new_hasher() if checksum else None
        parts = list(upload.s3_parts)
        pending: list[dict[str, Any]] = []
        part_size = upload.part_size
        # Parts are spooled on local disk (TUS_BUFFER_DIR): parts sent so far stay recorded.
        with (
            _disk_errors("spool a part in TUS_BUFFER_DIR"),
            tempfile.TemporaryFile(dir=_buffer_dir()) as buffer,
        ):
            buffered = self._load_tail(upload, buffer)
            for block in blocks:
                if hasher:
                    hasher.update(block)
                view = memoryview(block)
                while view:
                    take = min(len(view), part_size - buffered)
                    buffer.write(view[:take])
                    buffered += take
                    view = view[take:]
                    if buffered == part_size:
                        before_save()
                        pending.append(
                            self._upload_part(
                                upload, len(parts) + len(pending) + 1, buffer, buffered
                            )
                        )
                        buffered = 0
                        if not hasher:
                            parts += pending
                            pending = []
                            on_durable(Durable(_stored(parts), {"s3_parts": parts, "tail_size": 0}))
            if hasher and hasher.digest() != checksum.digest:
                # Parts sent for this chunk are not recorded: the next PATCH reuses (and so
                # overwrites) their numbers, and the tail object is untouched.
                raise ChecksumMismatch(checksum.algorithm)
            parts += pending
            if buffered:
                before_save()
            if buffered and _stored(parts) + buffered == upload.length:
                parts.append(self._upload_part(upload, len(parts) + 1, buffer, buffered))
                buffered = 0
            if buffered:
                self._save_tail(upload, _stored(parts), buffer, buffered)
        return Durable(_stored(parts) + buffered, {"s3_parts": parts, "tail_size": buffered})

    def stored_offset(self, upload: Upload) -> int:
        return upload.offset  # parts and the tail object are written before the offset moves

    def _load_tail(self, upload: Upload, buffer) -> int:
        if not upload.tail_size:
            return 0
        from botocore.exceptions import BotoCoreError, ClientError

        start = upload.offset - upload.tail_size
        try:
            # Only the recorded length: a writer that died after storing a longer tail but
            # before recording it left bytes the offset does not cover (same start, same prefix).
            body = self.client.get_object(
                Bucket=self.storage.bucket_name,
                Key=self._tail_key(upload, start),
                Range=f"bytes=0-{upload.tail_size - 1}",
            )["Body"]
            for chunk in body.iter_chunks(MIB):
                buffer.write(chunk)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "InvalidRange"):
                raise IncomingMissing(
                    f"the unfinished part of upload {upload.id} is gone"
                ) from error
            raise StorageUnavailable(f"S3: could not read the unfinished part: {error}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"S3: could not read the unfinished part: {error}") from error
        if buffer.tell() != upload.tail_size:
            raise IncomingMissing(
                f"the unfinished part of upload {upload.id} has {buffer.tell()} bytes, "
                f"expected {upload.tail_size}"
            )
        return upload.tail_size

    def _save_tail(self, upload: Upload, start: int, buffer, size: int) -> None:
        buffer.seek(0)
        with _s3_errors("store the unfinished part"):
            self.client.put_object(
                Bucket=self.storage.bucket_name,
                Key=self._tail_key(upload, start),
                Body=buffer,
                ContentLength=size,
            )

    def _upload_part(self, upload: Upload, number: int, buffer, size: int) -> dict[str, Any]:
        buffer.seek(0)
        with _s3_errors(f"upload part {number}"):
            sent = self.client.upload_part(
                Bucket=self.storage.bucket_name,
                Key=self._key(upload.source_path),
                UploadId=upload.s3_upload_id,
                PartNumber=number,
                Body=buffer,
                ContentLength=size,
            )
        buffer.seek(0)
        buffer.truncate()
        return {"n": number, "etag": sent["ETag"], "size": size}

    def assemble(self, upload: Upload) -> None:
        from botocore.exceptions import ClientError

        key = self._key(upload.source_path)
        parts = [{"PartNumber": p["n"], "ETag": p["etag"]} for p in upload.s3_parts]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.storage.bucket_name,
                Key=key,
                UploadId=upload.s3_upload_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as error:
            # A redelivered task finds the upload already completed: fine if the object is there.
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise StorageUnavailable(f"completing the multipart upload: {error}") from error
            if self._size(key) != upload.length:
                raise IncomingMissing(f"multipart upload of {upload.id} is gone") from error
        self._delete_tails(upload)

    def _size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.storage.bucket_name, Key=key)[
                "ContentLength"
            ]
        except ClientError:
            return None

    def _delete_tails(self, upload: Upload) -> None:
        with _s3_errors("delete unfinished parts"):
            for key in self._tail_keys(upload):
                self.client.delete_object(Bucket=self.storage.bucket_name, Key=key)

    def discard(self, upload: Upload) -> None:
        from botocore.exceptions import ClientError

        if upload.s3_upload_id:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.storage.bucket_name,
                    Key=self._key(upload.source_path),
                    UploadId=upload.s3_upload_id,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise StorageUnavailable(f"aborting the multipart upload: {error}") from error
        self._delete_tails(upload)


def s3_part_size(length: int) -> int:
    """Parts of TUS_S3_PART_SIZE (>= 5 MiB), larger when needed to stay under 10,000 parts."""
    configured = max(settings.TUS_S3_PART_SIZE, S3_MIN_PART)
    needed = math.ceil(length / S3_MAX_PARTS / MIB) * MIB
    return max(configured, needed)


def _stored(parts: list[dict[str, Any]]) -> int:
    return sum(part["size"] for part in parts)


def _buffer_dir() -> str:
    folder = settings.TUS_BUFFER_DIR
    os.makedirs(folder, exist_ok=True)
    return str(folder)


@contextmanager
def _disk_errors(doing: str) -> Iterator[None]:
    """Turn a local disk that is full or read-only into StorageUnavailable (any other OSError
    is ours to fix, and stays one)."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_ERRNOS:
            raise
        raise StorageUnavailable(f"disk: could not {doing}: {error.strerror}") from error


@contextmanager
def _s3_errors(doing: str) -> Iterator[None]:
    """Turn botocore failures into StorageUnavailable, naming what we were doing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise StorageUnavailable(f"S3: could not {doing}: {error}") from error


def store_for(storage: Storage) -> ByteStore:
    """The byte store matching the media storage: S3 multipart, or local disk."""
    if is_s3(storage):
        return S3Store(storage)
    if isinstance(storage, FileSystemStorage):
        return DiskStore(storage)
    raise StorageUnavailable(f"uploads cannot be stored on {type(storage).__name__}")


def store_of(upload: Upload, storage: Storage) -> ByteStore:
    """The byte store an existing upload was started on."""
    store = store_for(storage)
    if store.kind != upload.backend:
        raise StorageUnavailable(
            f"upload {upload.id} was started on {upload.backend} storage, which is not configured"
        )
    return store
