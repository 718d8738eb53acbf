"""Upload errors, each with the HTTP status the tus protocol gives it."""

from rest_framework import status

from apps.uploads.protocol import HTTP_CHECKSUM_MISMATCH
from streamgate.exceptions import Conflict, DomainError, NotFound


class BadUploadRequest(DomainError):
    """A malformed tus request (headers, metadata)."""


class UnsupportedContentType(DomainError):
    http_status = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class UnsupportedVersion(DomainError):
    http_status = status.HTTP_412_PRECONDITION_FAILED


class UploadNotFound(NotFound):
    """No such upload, or not yours: the two look the same."""


class UploadGone(DomainError):
    """Terminated or expired: the client must start a new upload."""

    http_status = status.HTTP_410_GONE


class OffsetMismatch(Conflict):
    pass


class UploadBusy(Conflict):
    """Another request holds the upload's write lease; the client may retry after
    ``retry_after`` seconds (sent as Retry-After)."""

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class UploadTooLarge(DomainError):
    """Over Upload-Length, TUS_MAX_SIZE or the user's quota."""

    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class ChecksumFailed(DomainError):
    http_status = HTTP_CHECKSUM_MISMATCH
