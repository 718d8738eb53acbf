"""The S3 byte store: an S3 multipart upload straight to the source key.

It holds at most one part in a temporary file (TUS_BUFFER_DIR), never in memory, so memory does
not grow with the size of a chunk or of the file.
"""

import math
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage

from apps.content.storage import StorageUnavailable
from apps.uploads.backends.base import ChecksumMismatch, Durable, IncomingMissing, disk_errors
from apps.uploads.models import Upload, UploadBackend

MIB = 1024 * 1024
S3_MIN_PART = 5 * MIB
S3_MAX_PARTS = 10_000


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
            disk_errors("spool a part in TUS_BUFFER_DIR"),
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
        from botocore.exceptions import BotoCoreError, ClientError

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
        except BotoCoreError as error:  # S3 did not answer: the task retries
            raise StorageUnavailable(f"completing the multipart upload: {error}") from error
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
        from botocore.exceptions import BotoCoreError, ClientError

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
            except BotoCoreError as error:  # S3 did not answer: the reaper retries
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
def _s3_errors(doing: str) -> Iterator[None]:
    """Turn botocore failures into StorageUnavailable, naming what we were doing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise StorageUnavailable(f"S3: could not {doing}: {error}") from error
