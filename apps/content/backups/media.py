"""The media half of a backup: every file of the default storage, local disk or S3.

Local disk: every regular file under the storage's location, except dot-files (files being
written are dot-named until renamed into place, apps/content/storage.py). S3: every object of
the bucket under the storage's location (all of the bucket when it has none), with the
Content-Type and Cache-Control players depend on, put back as they were.
"""

import mimetypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from django.core.files.storage import FileSystemStorage, Storage

from apps.content.backups.archive import (
    MEDIA_DIR,
    ArchivedFile,
    BackupError,
    copy_hashing,
    safe_relative,
)
from apps.content.storage import StorageUnavailable, is_s3, storage_put_file

_S3_HEADERS = ("ContentType", "CacheControl")


def storage_kind(storage: Storage) -> dict[str, str]:
    if is_s3(storage):
        return {"kind": "s3", "bucket": storage.bucket_name, "location": storage.location}  # type: ignore[attr-defined]
    if isinstance(storage, FileSystemStorage):
        return {"kind": "filesystem"}
    raise BackupError(
        f"Backups support local disk and S3 storage, not {storage.__class__.__name__}."
    )


def media_dump(
    storage: Storage, folder: Path, *, on_file: Callable[[ArchivedFile], object]
) -> list[ArchivedFile]:
    """Copy every stored file under ``folder``/media/; ``on_file`` after each one."""
    storage_kind(storage)
    files = []
    for name, opened, headers in _stored_files(storage):
        archived = safe_relative(f"{MEDIA_DIR}/{name}")
        with opened() as handle:
            size, sha256 = copy_hashing(handle, folder / archived)
        entry = ArchivedFile(path=archived, size=size, sha256=sha256, headers=headers)
        files.append(entry)
        on_file(entry)
    return files


def media_is_empty(storage: Storage) -> bool:
    return next(_names(storage), None) is None


def media_restore(
    storage: Storage,
    folder: Path,
    files: list[ArchivedFile],
    *,
    on_file: Callable[[ArchivedFile], object],
) -> None:
    """Store every archived media file back under its name, with its S3 headers."""
    prefix = f"{MEDIA_DIR}/"
    for entry in files:
        if not entry.path.startswith(prefix):
            continue
        name = entry.path[len(prefix) :]
        headers = entry.headers or {}
        # A backup of local disk restored to S3 has no headers: guess as a web server would.
        content_type = (
            headers.get("ContentType")
            or mimetypes.guess_type(name)[0]
            or "application/octet-stream"
        )
        storage_put_file(
            str(folder / entry.path),
            name,
            content_type=content_type,
            cache_control=headers.get("CacheControl", ""),
            storage=storage,
        )
        on_file(entry)


def _names(storage: Storage) -> Iterator[str]:
    if is_s3(storage):
        yield from (key for key, _ in _s3_objects(storage))
        return
    location = Path(storage.location)  # type: ignore[attr-defined]
    for folder, subfolders, names in os.walk(location):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                yield path.relative_to(location).as_posix()


def _stored_files(storage: Storage):
    """(storage name, a callable opening it for reading, S3 headers or None) of each file."""
    if not is_s3(storage):
        location = Path(storage.location)  # type: ignore[attr-defined]
        for name in _names(storage):
            yield name, (lambda name=name: (location / name).open("rb")), None
        return
    from botocore.exceptions import BotoCoreError, ClientError

    client = storage.connection.meta.client  # type: ignore[attr-defined]
    for name, key in _s3_objects(storage):
        try:
            response = client.get_object(Bucket=storage.bucket_name, Key=key)  # type: ignore[attr-defined]
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"reading {key!r}: {error}") from error
        headers = {header: response[header] for header in _S3_HEADERS if response.get(header)}
        yield name, (lambda body=response["Body"]: body), headers


def _s3_objects(storage: Storage) -> Iterator[tuple[str, str]]:
    """(storage name, bucket key) of every object under the storage's location."""
    from botocore.exceptions import BotoCoreError, ClientError

    location = storage.location.strip("/")  # type: ignore[attr-defined]
    prefix = f"{location}/" if location else ""
    client = storage.connection.meta.client  # type: ignore[attr-defined]
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket_name,  # type: ignore[attr-defined]
            Prefix=prefix,
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):  # a "folder" marker some tools create: no content
                    continue
                yield key[len(prefix) :], key
    except (BotoCoreError, ClientError) as error:
        raise StorageUnavailable(f"listing bucket {storage.bucket_name!r}: {error}") from error  # type: ignore[attr-defined]
