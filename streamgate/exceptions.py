"""Domain errors every app raises, how the API words them (status, reason, JSON body); the DRF
handler that answers with them is streamgate/api_errors.py."""

import re
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from rest_framework import status


class DomainError(Exception):
    """A request that cannot be carried out as asked; the message tells the user why."""

    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(
        self, message: str, *, reason: str | None = None, extra: dict | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.extra = extra or {}  # more fields of the JSON answer (e.g. a 403's offers)


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
    """A dependency (an RPC node, storage, the database) did not answer; the client may retry
    after ``retry_after`` seconds. ``dependency`` names it in the answer when it is one of ours
    (streamgate/outages.py)."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: int = 5,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        self.dependency = dependency


def status_reason(status_code: int) -> str:
    """The reason of an error that names none: its status, ``not_found``, ``conflict``..."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return "error"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def django_error(exc: Exception) -> tuple[int, str, str] | None:
    """(status, detail, reason) of the errors Django raises for a bad request (a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, too many form fields, a disallowed Host...); None for others.
    Their own messages name settings, so the detail is ours."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 413, f"The request body is larger than {limit} bytes.", "body_too_large"
    if not isinstance(exc, (SuspiciousOperation, BadRequest)):
        return None
    # TooManyFieldsSent -> too_many_fields_sent, DisallowedHost -> disallowed_host, ...
    reason = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    details = {
        "TooManyFieldsSent": f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields.",
        "TooManyFilesSent": f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files.",
        "DisallowedHost": "The Host header names a site this server does not serve.",
    }
    return 400, details.get(type(exc).__name__, "Malformed or unsafe request."), reason


def api_error(status: int, detail: str, reason: str, **fields: str) -> JsonResponse:
    # Compact, as DRF's JSONRenderer writes it.
    return JsonResponse(
        {"detail": detail, "reason": reason, **fields},
        status=status,
        json_dumps_params={"separators": (",", ":"), "ensure_ascii": False},
    )
