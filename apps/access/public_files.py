"""/public/: the encrypted media files anyone may fetch, served by the app when nothing is in
front of it (``make run``); in production nginx (deploy/nginx) or a CDN serves them instead.

No token, no database, no Django: the bytes are encrypted (apps/transcode/encryption.py) and
only their keys are gated. GET and HEAD with one byte range, the headers nginx's configuration
gives (public and immutable, any origin), 404 for what is not there. With S3 storage the answer
is a redirect to the object (a presigned URL) unless PUBLIC_MEDIA_URL points at the bucket or a
CDN, as it should. ``public_file`` gives the same answers through Django's URLconf, for a server
without this ASGI layer (the browser tests' WSGI live server). By hand because Starlette's or
whitenoise's static files want a fixed folder at import time and their own headers; this is a
few lines over the storage's path.
"""

import asyncio
import os
import re

from django.conf import settings
from django.core.files.storage import default_storage

from apps.access.http_range import RangeNotSatisfiable, read_span
from apps.content.storage import is_s3
from apps.transcode.packaging import content_type_of

PREFIX = "/public/"
IMMUTABLE = b"public, max-age=31536000, immutable"
# <content uuid>/<job mark>/<hls|ts|dash>/<file>: nothing else is ever stored under public/.
SAFE_PATH = re.compile(
    r"^[0-9a-f-]{36}/[0-9a-f]{32}/(?:hls|ts|dash)/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"
)
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Content-Length, Content-Range, Accept-Ranges"),
]


def _read(path: str, range_header: str | None, head: bool):
    try:
        size, span, body = read_span(path, range_header, head=head)
    except RangeNotSatisfiable:
        return 416, [(b"content-range", f"bytes */{os.path.getsize(path)}".encode())], b""
    except OSError:
        return None
    start, end = span if span else (0, size - 1)
    headers = [(b"accept-ranges", b"bytes"), (b"content-length", str(end - start + 1).encode())]
    if span:
        headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
    return (206 if span else 200), headers, body


class PublicFiles:
    """ASGI middleware: answer /public/ requests; pass everything else to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        status, headers, body = await self._answer(scope)
        await send({"type": "http.response.start", "status": status, "headers": headers + CORS})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope):
        method = scope["method"]
        if method == "OPTIONS":
            return (
                204,
                [
                    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                    (b"access-control-allow-headers", b"Range"),
                    (b"access-control-max-age", b"86400"),
                ],
                b"",
            )
        if method not in ("GET", "HEAD"):
            return 405, [(b"allow", b"GET, HEAD, OPTIONS")], b""
        name = scope["path"][len(PREFIX) :]
        if not SAFE_PATH.match(name):
            return _not_found()
        path = "public/" + name
        if is_s3(default_storage):
            url = default_storage.url(path, expire=settings.STREAM_PRESIGN_SECONDS)
            return 302, [(b"location", url.encode()), (b"cache-control", b"no-store")], b""
        range_header = dict(scope["headers"]).get(b"range")
        read = await asyncio.to_thread(
            _read,
            default_storage.path(path),
            range_header.decode("latin-1") if range_header is not None else None,
            method == "HEAD",
        )
        if read is None:
            return _not_found()
        status, headers, body = read
        headers += [
            (b"content-type", content_type_of(name).encode()),
            (b"cache-control", IMMUTABLE),
        ]
        return status, headers, body


def _not_found():
    body = b'{"detail": "No such file.", "reason": "not_found"}'
    return (
        404,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ],
        body,
    )


def public_file(request, name: str):
    """The same answer from Django's URLconf, for servers without the ASGI layer in front (the
    browser tests' WSGI live server, a WSGI deployment)."""
    from django.http import HttpResponse, HttpResponseRedirect, JsonResponse

    from apps.access.stream import file_response

    cors = {"Access-Control-Allow-Origin": "*"}
    if request.method == "OPTIONS":
        return HttpResponse(
            status=204,
            headers={
                **cors,
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": "Range",
                "Access-Control-Max-Age": "86400",
            },
        )
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={**cors, "Allow": "GET, HEAD, OPTIONS"})
    missing = JsonResponse(
        {"detail": "No such file.", "reason": "not_found"},
        status=404,
        headers={**cors, "Cache-Control": "no-store"},
    )
    if not SAFE_PATH.match(name):
        return missing
    path = "public/" + name
    if is_s3(default_storage):
        url = default_storage.url(path, expire=settings.STREAM_PRESIGN_SECONDS)
        return HttpResponseRedirect(url, headers={**cors, "Cache-Control": "no-store"})
    try:
        handle = open(default_storage.path(path), "rb")  # noqa: SIM115 - closed by the response
    except OSError:
        return missing
    headers = {
        **cors,
        "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
        "Content-Type": content_type_of(name),
        "Cache-Control": IMMUTABLE.decode(),
    }
    return file_response(request, handle, headers)
