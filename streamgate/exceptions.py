"""Domain errors every app raises, and the one place they become HTTP responses."""

import logging
import re
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus DomainError, a dependency that is away (503, streamgate/outages.py)
    and Django's bad-request errors -> ``{"detail", "reason"}`` with their HTTP status. DRF's
    own errors keep their shape (``{"field": [...]}`` for validation) and get their code as the
    reason (``not_found``, ``parse_error``...)."""
    # Imported here: rest_framework.views loads the authentication classes, which import
    # services that raise the errors above.
    from rest_framework.views import exception_handler

    from streamgate.outages import unavailable_for

    request = context.get("request")
    exc = unavailable_for(exc, path=getattr(request, "path", "")) or exc
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "reason": exc.reason or status_reason(exc.http_status)}
        if getattr(exc, "dependency", None):
            body["dependency"] = exc.dependency
        headers = {}
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if getattr(exc, "retry_after", None) is not None:  # Unavailable, a busy upload
            headers["Retry-After"] = str(exc.retry_after)
        response = Response(body, status=exc.http_status, headers=headers)
        if getattr(exc, "dependency", None):
            # Logged once where it was recognised (streamgate/outages.py), not again by Django
            # as a server error.
            response._has_been_logged = True
        return response
    known = django_error(exc)
    if known is not None:
        code, detail, reason = known
        # As Django would: these are logged as security events, not as server errors.
        logging.getLogger(f"django.security.{type(exc).__name__}").warning(str(exc))
        return Response({"detail": detail, "reason": reason}, status=code)
    response = exception_handler(exc, context)
    if (
        response is not None
        and isinstance(response.data, dict)
        and set(response.data) == {"detail"}
    ):
        code = getattr(response.data["detail"], "code", None)
        response.data["reason"] = code or status_reason(response.status_code)
    return response
