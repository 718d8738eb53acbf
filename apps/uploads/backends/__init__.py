"""Where received bytes go: the boundary to local disk and to S3 multipart uploads.

``store_for`` picks the byte store matching the media storage and ``store_of`` the one an
upload was started on. The stores live in ``disk`` and ``s3``; what they share (the protocol,
``Durable`` progress and the errors) in ``base``. This package re-exports the public names.
"""

from django.core.files.storage import FileSystemStorage, Storage

from apps.content.storage import StorageUnavailable, is_s3
from apps.uploads.backends.base import (
    BeforeSave,
    ByteStore,
    ChecksumMismatch,
    Durable,
    IncomingMissing,
    OnDurable,
    StoredBehindOffset,
)
from apps.uploads.backends.disk import DiskStore
from apps.uploads.backends.s3 import S3Store, s3_part_size
from apps.uploads.models import Upload

__all__ = [
    "BeforeSave",
    "ByteStore",
    "ChecksumMismatch",
    "DiskStore",
    "Durable",
    "IncomingMissing",
    "OnDurable",
    "S3Store",
    "StoredBehindOffset",
    "s3_part_size",
    "store_for",
    "store_of",
]


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
