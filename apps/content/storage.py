"""The boundary to media storage (local disk or S3), for what Django's Storage API lacks:
deleting a whole prefix and checking reachability. Paths are storage-relative."""

import io
import logging
import os
import shutil

from django.core.files.storage import FileSystemStorage, Storage, default_storage


class StorageUnavailable(Exception):
    """Storage could not be reached or refused the operation; worth retrying."""


def is_s3(storage: Storage) -> bool:
    return hasattr(storage, "bucket_name") and hasattr(storage, "bucket")


def source_prefix(content_id: str) -> str:
    return f"sources/{content_id}/"


def renditions_prefix(content_id: str) -> str:
    return f"renditions/{content_id}/"


def public_prefix(content_id: str) -> str:
    """Encrypted media anyone may fetch and cache (nginx, a CDN, the bucket): no token, no app."""
    return f"public/{content_id}/"


def captions_prefix(content_id: str) -> str:
    """Captions live beside the renditions, not in a job's folder: they outlive re-encodes."""
    return f"captions/{content_id}/"


def posters_prefix(content_id: str) -> str:
    """Where the posters a creator chose are stored: inside the content's renditions folder, so
    that deleting the content removes them, but outside any job's, so that pruning old jobs
    does not."""
    return f"{renditions_prefix(content_id)}posters/"


def storage_delete_quietly(path: str, *, storage: Storage = default_storage) -> None:
    """Delete one stored file that is no longer referenced; a failure is logged, not raised
    (what is left is garbage under the content's folder, removed with the content)."""
    try:
        storage.delete(path)
    except Exception:
        logging.getLogger(__name__).warning(
            "could not delete a stored file", extra={"path": path}, exc_info=True
        )


def storage_delete_prefix(prefix: str, *, storage: Storage = default_storage) -> int:
    """Delete every file under ``prefix`` (which must end with '/'); returns how many."""
    if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ValueError(f"refusing to delete unsafe prefix {prefix!r}")
    if is_s3(storage):
        return _s3_delete_prefix(storage, storage._normalize_name(prefix))
    if isinstance(storage, FileSystemStorage):
        root = storage.path(prefix)
        if not os.path.isdir(root):
            return 0
        count = sum(len(files) for _, _, files in os.walk(root))
        shutil.rmtree(root)
        return count
    return _generic_delete_prefix(storage, prefix)


def _s3_delete_prefix(storage: Storage, key_prefix: str) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        deleted = storage.bucket.objects.filter(Prefix=key_prefix).delete()
    except (BotoCoreError, ClientError) as error:
        raise StorageUnavailable(f"S3 delete of {key_prefix!r} failed: {error}") from error
    return sum(len(batch.get("Deleted", [])) for batch in deleted)


def _generic_delete_prefix(storage: Storage, prefix: str) -> int:
    folders, files = storage.listdir(prefix)
    count = 0
    for name in files:
        storage.delete(prefix + name)
        count += 1
    for folder in folders:
        count += _generic_delete_prefix(storage, f"{prefix}{folder}/")
    return count


def storage_ping(storage: Storage = default_storage) -> None:
    """Raise StorageUnavailable unless storage answers and can be written."""
    if is_s3(storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"bucket {storage.bucket_name!r}: {error}") from error
        return
    if isinstance(storage, FileSystemStorage):
        location = storage.location
        os.makedirs(location, exist_ok=True)
        if not os.access(location, os.W_OK):
            raise StorageUnavailable(f"media folder {location} is not writable")
        return
    storage.exists("readyz")


def storage_read_chunks(
    path: str, *, chunk_size: int = 8 * 1024 * 1024, storage: Storage = default_storage
):
    """Yield the stored file's bytes in chunks, streamed (S3: one GET), never all at once."""
    if is_s3(storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = storage.connection.meta.client.get_object(
                Bucket=storage.bucket_name, Key=storage._normalize_name(path)
            )["Body"]
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"reading {path!r}: {error}") from error
        return
    with storage.open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


class _S3RangeReader(io.RawIOBase):
    """A seekable read-only file over an S3 object, one ranged GET per buffered read."""

    def __init__(self, client, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        if self.position >= self.size or not len(buffer):
            return 0
        from botocore.exceptions import BotoCoreError, ClientError

        last = min(self.position + len(buffer), self.size) - 1
        try:
            data = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{last}"
            )["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"reading {self.key!r}: {error}") from error
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def storage_open_seekable(path: str, *, storage: Storage = default_storage) -> io.BufferedIOBase:
    """A seekable binary file for readers that jump around (PyAV probing a container).

    On S3 it reads with ranged GETs through a 1 MiB buffer instead of downloading the object.
    """
    if is_s3(storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            raw = _S3RangeReader(
                storage.connection.meta.client, storage.bucket_name, storage._normalize_name(path)
            )
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"opening {path!r}: {error}") from error
        return io.BufferedReader(raw, buffer_size=1024 * 1024)
    return storage.open(path, "rb")


def storage_source_location(path: str, *, expires: int, storage: Storage = default_storage) -> str:
    """Where FFmpeg can read a stored file: a local path, or a presigned HTTPS URL on S3
    (FFmpeg then reads with range requests instead of waiting for a full download)."""
    if is_s3(storage):
        return storage.url(path, expire=expires)
    return storage.path(path)


def storage_put_file(
    local_path: str,
    name: str,
    *,
    content_type: str,
    cache_control: str,
    storage: Storage = default_storage,
) -> None:
    """Store a local file at ``name`` with HTTP headers (S3) or atomically on disk."""
    if is_s3(storage):
        from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.connection.meta.client.upload_file(
                local_path,
                storage.bucket_name,
                storage._normalize_name(name),
                ExtraArgs={
                    "ContentType": content_type,
                    **({"CacheControl": cache_control} if cache_control else {}),
                },
            )
        except (BotoCoreError, ClientError, S3UploadFailedError, S3TransferFailedError) as error:
            raise StorageUnavailable(f"uploading {name!r}: {error}") from error
        return
    if isinstance(storage, FileSystemStorage):
        target = storage.path(name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # A dot-name beside it, renamed into place: nginx never serves a dot-file
        # (deploy/nginx), so a public file is never seen half-written.
        folder, name = os.path.split(target)
        temporary = os.path.join(folder, f".{name}.part-{os.getpid()}")
        shutil.copyfile(local_path, temporary)
        os.replace(temporary, target)
        return
    with open(local_path, "rb") as handle:
        storage.save(name, handle)


def storage_exists(path: str, *, storage: Storage = default_storage) -> bool:
    """Whether ``path`` is stored; StorageUnavailable when storage cannot say."""
    if is_s3(storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.connection.meta.client.head_object(
                Bucket=storage.bucket_name, Key=storage._normalize_name(path)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageUnavailable(f"checking {path!r}: {error}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"checking {path!r}: {error}") from error
        return True
    try:
        return storage.exists(path)
    except OSError as error:
        raise StorageUnavailable(f"checking {path!r}: {error}") from error
