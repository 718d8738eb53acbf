"""Stream files without Django: the hot case of /stream/ answered at the ASGI layer.

A segment through Django costs about 4 ms on these machines (a thread hop, fifteen middleware,
the view) for what needs an HMAC over the token (no database), one file read and a handful of
headers; players fetch a segment every few seconds each, so segments are most of what a busy
site serves. This layer in front of Django answers exactly that case: GET or HEAD of a file of
the published job a valid token names, from local disk, whole or one satisfiable byte range.

Everything else goes on to Django's view (apps/access/stream.py), which stays the reference: the
manifests and caption files (whose answer depends on the content's captions, a database read:
apps/access/stream_captions.py), a token refused (Django logs why and answers 403), a name that
is not a plain file, a missing or unreadable file, an HTML file (Django adds its
Content-Security-Policy), a preflight, a Range it would answer 416, S3 storage or nginx's
X-Accel-Redirect, a Host Django would refuse or take from X-Forwarded-Host, a plain-http request
production redirects to https, a file past STREAM_MEMORY_LIMIT (streamed in pieces there).

The response is the one Django would send: the view's own functions give the type, caching and
range headers; Django's security middleware, the X-Frame-Options middleware and ours are run once
per scheme on an empty response to give the site-wide headers; CORS is stream_cors's policy.
tests/access/test_stream_fast.py sends each case through both paths and compares the answers
header by header, so a middleware added one day that changes stream answers fails there.

Why by hand: static-file servers (whitenoise, Starlette's StaticFiles) map a URL prefix onto a
folder; here the folder comes from a capability in the path that must be verified first, and the
headers must be Django's. What remains is a few dozen lines of ASGI around functions the view
already uses.
"""

import asyncio
import logging
import re
import time
import uuid
from functools import cache

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from apps.access.http_range import RangeNotSatisfiable, TooLarge, read_span
from apps.access.playback import playback_keys
from apps.access.playback_tokens import TokenRejected, token_verify
from apps.access.stream import SAFE_NAME
from apps.access.stream_captions import is_caption_aware
from apps.access.stream_cors import EXPOSE_HEADERS
from apps.content.storage import is_s3
from apps.transcode.packaging import cache_control_of, content_type_of
from streamgate.edge import scope_headers
from streamgate.metrics import STREAM_FAST_RESPONSES
from streamgate.observability import REQUEST_ID_HEADER, request_id_for
from streamgate.security import SecurityHeadersMiddleware

logger = logging.getLogger(__name__)

ROUTE = re.compile(
    r"^/stream/(?P<token>[^/]+)/"
    r"(?P<content>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/"
    r"(?P<name>.+)\Z"  # \Z, as Django's routes: "$" would also match before a final newline
)
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_PASS = None  # what a check returns when Django should answer
_SERVED = STREAM_FAST_RESPONSES.labels(outcome="served")
_PASSED = STREAM_FAST_RESPONSES.labels(outcome="pass")


@receiver(setting_changed)
def _settings_changed(**_kwargs) -> None:
    site_headers.cache_clear()


@cache
def site_headers(
    secure: bool, content_type: str = "application/octet-stream"
) -> tuple[tuple[bytes, bytes], ...]:
    """The headers Django's middleware adds to every response of this scheme, computed by that
    middleware on an empty response of ``content_type`` (non-HTML unless told: an HTML one
    gets a Content-Security-Policy too); settings are read once per process."""
    request = HttpRequest()
    request.is_secure = lambda: secure  # type: ignore[method-assign]
    response = HttpResponse(content_type=content_type)

    def answer(_request):
        return response

    for middleware in (SecurityMiddleware, XFrameOptionsMiddleware):
        middleware(answer).process_response(request, response)
    SecurityHeadersMiddleware(answer)(request)
    skip = {"content-type"}
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() not in skip
    )


def is_secure_scope(scope, headers: dict[bytes, bytes]) -> bool:
    """Django's HttpRequest.is_secure for this request."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, expected = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        if name in headers:
            return headers[name].decode("latin-1").split(",")[0].strip() == expected
    return scope.get("scheme") == "https"


def host_allowed(headers: dict[bytes, bytes]) -> bool:
    if settings.USE_X_FORWARDED_HOST and b"x-forwarded-host" in headers:
        return False  # Django's rules for forwarded hosts: let it decide
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _read(path: str, range_header: str | None, head: bool):
    """(status, length, content-range or None, body) of the file, or None for Django to answer."""
    try:
        size, span, body = read_span(
            path, range_header, head=head, limit=settings.STREAM_MEMORY_LIMIT
        )
    except (OSError, RangeNotSatisfiable, TooLarge):
        # Missing, a folder, unreadable, a range past the end, too large to read at once:
        # Django's view answers (404, 503, 416, or a streamed response).
        return _PASS
    start, end = span if span else (0, size - 1)
    content_range = f"bytes {start}-{end}/{size}" if span else None
    return (206 if span else 200), max(0, end - start + 1), content_range, body


class StreamFiles:
    """ASGI middleware: serve a /stream/ file straight from disk when Django would answer it the
    same way; pass every other request to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not scope["path"].startswith("/stream/")
            or settings.STREAM_ACCEL_REDIRECT
            or is_s3(default_storage)
        ):
            await self.app(scope, receive, send)
            return
        answer = await self._answer(scope)
        if answer is _PASS:
            _PASSED.inc()
            await self.app(scope, receive, send)
            return
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        _SERVED.inc()

    async def _answer(self, scope):
        found = ROUTE.match(scope["path"])
        if found is None:
            return _PASS
        name = found["name"]
        if not SAFE_NAME.match(name) or ".." in name or is_caption_aware(name):
            return _PASS  # captions in manifests come from the database: Django's view
        headers = scope_headers(scope)
        secure = is_secure_scope(scope, headers)
        if (settings.SECURE_SSL_REDIRECT and not secure) or not host_allowed(headers):
            return _PASS
        content_id = found["content"]
        try:
            grant = token_verify(
                found["token"], content_id=content_id, keys=playback_keys(), now=time.time()
            )
        except TokenRejected:
            return _PASS  # Django's view logs the refusal and answers 403
        if content_type_of(name).startswith("text/html"):
            return _PASS  # Django adds its Content-Security-Policy to HTML; the job holds none
        path = f"renditions/{content_id}/{uuid.UUID(hex=grant.job_id)}/{name}"
        range_header = headers.get(b"range")
        read = await asyncio.to_thread(
            _read,
            default_storage.path(path),
            range_header.decode("latin-1") if range_header is not None else None,
            scope["method"] == "HEAD",
        )
        if read is _PASS:
            return _PASS
        status, length, content_range, body = read
        request_id = request_id_for(headers.get(_REQUEST_ID, b"").decode("latin-1"))
        sent = [
            (b"content-type", content_type_of(name).encode("latin-1")),
            (b"cache-control", cache_control_of(name).encode("latin-1")),
            (b"accept-ranges", b"bytes"),
            (b"content-length", str(length).encode()),
        ]
        if content_range is not None:
            sent.append((b"content-range", content_range.encode()))
        sent += [
            *site_headers(secure),
            (_REQUEST_ID, request_id.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        return status, sent, body
