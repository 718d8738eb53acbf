"""Domain errors every app raises, and the one place they become HTTP responses."""

from typing import Any

from rest_framework import status
from rest_framework.response import Response


class DomainError(Exception):
    """A request that cannot be carried out as asked; the message tells the user why."""

    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class Unauthenticated(DomainError):
    """The request needs a signed-in caller, or its credentials were refused."""

    http_status = status.HTTP_401_UNAUTHORIZED


class NotAllowed(DomainError):
    http_status = status.HTTP_403_FORBIDDEN


class NotFound(DomainError):
    http_status = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    """The resource is not in a state that allows the request (e.g. content not ready)."""

    http_status = status.HTTP_409_CONFLICT


class Unavailable(DomainError):
    """A dependency (an RPC node, storage) did not answer; the client may retry later."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus DomainError -> ``{"detail", "reason"}`` with its HTTP status."""
    # Imported here: rest_framework.views loads the authentication classes, which import
    # services that raise the errors above.
    from rest_framework.views import exception_handler

    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.reason:
            body["reason"] = exc.reason
        headers = {}
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if getattr(exc, "retry_after", None) is not None:  # Unavailable, a busy upload
            headers["Retry-After"] = str(exc.retry_after)
        return Response(body, status=exc.http_status, headers=headers)
    return exception_handler(exc, context)
