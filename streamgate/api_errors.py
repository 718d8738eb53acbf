"""Under ``/api/``, every error is JSON ``{"detail", "reason"}``, whoever answers it.

DRF's handler (streamgate/exceptions.py) shapes the errors raised in API views. Django answers
some requests around DRF: a Host outside ALLOWED_HOSTS is refused by middleware before any view,
a URL no endpoint serves is a 404, and an unhandled exception becomes handler500's page (the
debug page with DEBUG on). ``ApiErrorMiddleware`` refuses the Host itself and turns any other
error under ``/api/`` that is not JSON into JSON with the same status and headers, so clients
never parse HTML; ``api_not_found`` answers unknown URLs under ``/api/``. Django still logs
and reports (Sentry) unhandled exceptions as before: only the body changes.
"""

import logging
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from streamgate.exceptions import django_error, status_reason

API_PREFIX = "/api/"
NOT_FOUND_URL_NAME = "api-not-found"
# Describe the replaced body, which is gone.
_BODY_HEADERS = {"content-type", "content-length", "content-encoding", "content-disposition"}


def api_error(status: int, detail: str, reason: str, **fields: str) -> JsonResponse:
    # Compact, as DRF's JSONRenderer writes it.
    return JsonResponse(
        {"detail": detail, "reason": reason, **fields},
        status=status,
        json_dumps_params={"separators": (",", ":"), "ensure_ascii": False},
    )


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
