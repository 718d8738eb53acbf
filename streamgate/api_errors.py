"""Under ``/api/``, every error is JSON ``{"detail", "reason"}``, whoever answers it.

DRF's handler (``api_exception_handler``, below) shapes the errors raised in API views.
Django answers some requests around DRF: a Host outside ALLOWED_HOSTS is refused by middleware
before any view, a URL no endpoint serves is a 404, and an unhandled exception becomes
handler500's page (the debug page with DEBUG on). ``ApiErrorMiddleware`` refuses the Host
itself and turns any other error under ``/api/`` that is not JSON into JSON with the same
status and headers, so clients never parse HTML; ``api_not_found`` answers unknown URLs under
``/api/``. Django still logs and reports (Sentry) unhandled exceptions as before: only the body
changes.
"""

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import exception_handler

from streamgate.exceptions import (
    DomainError,
    Unauthenticated,
    api_error,
    django_error,
    status_reason,
)
from streamgate.outages import unavailable_for

API_PREFIX = "/api/"
NOT_FOUND_URL_NAME = "api-not-found"
# Describe the replaced body, which is gone.
_BODY_HEADERS = {"content-type", "content-length", "content-encoding", "content-disposition"}


def _is_json(response: HttpResponse) -> bool:
    media_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _as_json(response: HttpResponse) -> JsonResponse:
    """The same error, status and headers (Allow, Retry-After, CORS...) with a JSON body."""
    try:
        detail = f"{HTTPStatus(response.status_code).phrase}."
    except ValueError:
        detail = "Error."
    replacement = api_error(response.status_code, detail, status_reason(response.status_code))
    for header, value in response.items():
        if header.lower() not in _BODY_HEADERS:
            replacement[header] = value
    replacement.cookies = response.cookies
    return replacement


class ApiErrorMiddleware:
    """Place it before any middleware that reads the Host (SecurityMiddleware, CommonMiddleware),
    so that a disallowed Host is refused here, in JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost as error:
            # Logged as Django logs it, a security event.
            logging.getLogger("django.security.DisallowedHost").error(str(error))
            return api_error(*django_error(error))
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response):
            return response
        return _as_json(response)


def _served(path: str) -> bool:
    try:
        return resolve(path).url_name != NOT_FOUND_URL_NAME
    except Resolver404:
        return False


@csrf_exempt  # a POST to a wrong URL is a 404 whatever its credentials, never a CSRF page
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Any URL under /api/ that no endpoint serves. One that only lacks its trailing slash is
    redirected for GET and HEAD, as Django's APPEND_SLASH does for other pages; other methods
    would lose their body to a redirect, so they get a 404 that names the right URL."""
    if not request.path_info.endswith("/") and _served(f"{request.path_info}/"):
        if request.method in ("GET", "HEAD"):
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        detail = f"No endpoint at {request.path}; did you mean {request.path}/ (with a slash)?"
    else:
        detail = f"No endpoint at {request.path}."
    return api_error(404, detail, "not_found")


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus DomainError, a dependency that is away (503, streamgate/outages.py)
    and Django's bad-request errors -> ``{"detail", "reason"}`` with their HTTP status. DRF's
    own errors keep their shape (``{"field": [...]}`` for validation) and get their code as the
    reason (``not_found``, ``parse_error``...)."""
    request = context.get("request")
    exc = unavailable_for(exc, path=getattr(request, "path", "")) or exc
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "reason": exc.reason or status_reason(exc.http_status)}
        body.update({k: v for k, v in getattr(exc, "extra", {}).items() if k not in body})
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
        # More fields an API error carries (a missing scope's ``required_scope``).
        extra = getattr(exc, "extra", None)
        if isinstance(extra, dict):
            response.data.update({k: v for k, v in extra.items() if k not in response.data})
    return response
