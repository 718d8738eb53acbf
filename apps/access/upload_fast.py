"""tus PATCHes without Django's stack: a bearer-authenticated append answered at the ASGI layer.

A 5 MiB PATCH (what S3-style and proxy-limited clients send) spent most of its time on fixed
costs, not on its bytes (tests/benchmarks/upload.py, profiled with py-spy): a new thread and a
new database connection per request, fifteen middleware, DRF's dispatch, then seven queries
(the token, the upload, a wait for its lease, the lease taken and reloaded, the offset
committed, the lease given back). This layer answers the common case with the same functions
the view calls, in one hop to a long-lived worker thread:

* the same authentication: DRF's ``BearerTokenAuthentication`` (the token, its scopes for a
  PATCH of an upload, its last use), on requests that carry a bearer token and no cookie;
* the write lease claimed with one conditional UPDATE that also checks the owner, the offset,
  the state, the expiry and the room left (``upload_append_claimed``), then
  ``upload_append_leased``: the same byte store, checksum, offset commits (every
  TUS_DISK_COMMIT_BYTES / _SECONDS, the last one giving the lease up in the same UPDATE),
  progress events and last-byte completion as the view's ``upload_append``;
* the body streamed as the view gets it (``streamgate.streaming.ReceiveStream``: ends early on
  a disconnect, an idle client or a server shutdown, so the bytes that arrived are committed);
  or, for a body of TUS_SPLICE_MIN_BYTES or more bound for disk without a checksum, moved by
  the kernel from the socket to the file (``streamgate.streaming.SocketBody``, splice(2)) with
  the same early ends, commits and lease renewals, and the rest of a body an error cut short
  read and dropped before the answer, as the server does for the view.

Before any byte is read, anything else goes on to Django, which answers as the reference: a
session (cookies, CSRF), a cross-origin request (CORS), a method override, a wrong version or
content type, a malformed header, a token refused or missing the scope, another user's or an
unknown upload, an offset that differs, a lease held (the view waits for it), an upload that
expired, ended or would overflow, an empty PATCH, the database away. Errors met while the body
streams (checksum 460, past Upload-Length 413, storage 503, lease lost 409, bytes lost 410) are
the domain errors the view raises, answered with DRF's exception handler's JSON and headers.

Why by hand: no library answers part of a Django view's traffic before Django; this is the
pattern of apps/access/beacon_fast.py and stream_fast.py around the uploads' own services.
"""

import logging
import re
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import close_old_connections, connections
from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from apps.access.authentication import BearerTokenAuthentication
from apps.access.stream_fast import host_allowed, is_secure_scope, site_headers
from apps.uploads.api.views import UploadResourceView
from apps.uploads.backends import store_of
from apps.uploads.models import Upload
from apps.uploads.protocol import (
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    Checksum,
    ProtocolError,
    http_date,
    parse_checksum,
    parse_non_negative,
)
from apps.uploads.services.receiving import upload_append_claimed, upload_append_leased
from streamgate import shutdown
from streamgate.api_errors import api_exception_handler
from streamgate.edge import scope_headers
from streamgate.exceptions import DomainError
from streamgate.metrics import UPLOAD_FAST_RESPONSES
from streamgate.observability import REQUEST_ID_HEADER, request_id_bound, request_id_for
from streamgate.outages import unavailable_for
from streamgate.streaming import ReceiveStream, SocketBody, detach

logger = logging.getLogger(__name__)

ROUTE = re.compile(
    r"^/api/v1/uploads/"
    r"(?P<upload>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?\Z"
)
# Bytes gathered per hop from the worker thread to the event loop (64 KiB ASGI messages), as
# the view's body does: bytes wait in memory at most that long before they are written (and so
# kept when the process dies), and memory stays at one gather per PATCH whatever its size.
GATHER = 1024 * 1024
# What Django's answer carries besides the site's headers: DRF's APIView names the methods it
# allows, django-cors-headers varies /api/ answers on Origin; its 204 is an HttpResponse, whose
# (meaningless) content type is HTML, so the site's HTML headers come with it.
_ALLOW = (b"allow", b"PATCH, DELETE, HEAD, OPTIONS")
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_REFUSED = {b"cookie", b"origin", b"x-http-method-override"}
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_SERVED = UPLOAD_FAST_RESPONSES.labels(outcome="served")
_PASSED = UPLOAD_FAST_RESPONSES.labels(outcome="pass")


class _Pass(Exception):
    """Django answers this request."""


class UploadPatchFast:
    """ASGI middleware: append a bearer-authenticated tus PATCH as the view would and answer
    it; pass every other request to ``app``."""

    def __init__(self, app) -> None:
        self.app = app
        self.view = UploadResourceView()  # what the token's scopes are checked against

    async def __call__(self, scope, receive, send) -> None:
        found = (
            ROUTE.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "PATCH"
            else None
        )
        request = _eligible(scope) if found is not None and settings.TUS_FAST_PATCH else None
        if request is None:
            if found is not None:
                _PASSED.inc()
            await self.app(scope, receive, send)
            return
        shutdown.install()  # as Django's streaming handler does: SIGTERM commits and answers
        stream = ReceiveStream(receive, scope["path"])
        try:
            status, headers, body = await self._serve(found["upload"], request, scope, stream)
        except _Pass:
            _PASSED.inc()
            await self.app(scope, receive, send)
            return
        content_type = _HTML if status == 204 else _JSON
        headers += [
            (b"content-type", content_type.encode()),
            (b"tus-resumable", TUS_VERSION.encode()),
            (b"cache-control", b"no-store"),
            _ALLOW,
            *site_headers(request["secure"], content_type),
            (_REQUEST_ID, request["request_id"].encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        _SERVED.inc()

    @sync_to_async(thread_sensitive=False)
    def _serve(self, upload_id: str, request: dict, scope: dict, stream: ReceiveStream):
        """The view's work, in a worker thread that lives on (one hop per request, not a new
        thread), with the connection handling a request gets."""
        _close_old_connections()
        try:
            with request_id_bound(request["request_id"]):
                return self._append(upload_id, request, scope, stream)
        finally:
            _close_old_connections()

    def _append(self, upload_id: str, request: dict, scope: dict, stream: ReceiveStream):
        try:
            user = self._authenticated(request["authorization"])
            lease = upload_append_claimed(
                upload_id=upload_id,
                owner_id=user.pk,
                offset=request["offset"],
                content_length=request["content_length"],
            )
        except Exception as error:
            # An outage is answered here: Django would wait for the absent service again (the
            # 503 would take twice the bounded wait). A refusal Django answers as the reference.
            if unavailable_for(error) is not None:
                return _error(error)
            raise _Pass from error
        if lease is None:
            raise _Pass
        body: Iterable[Any] = stream.chunks(GATHER)
        spliced = None
        try:
            if _splices(request, lease.upload):
                detached = _detached(scope, request["content_length"])
                if detached is not None:
                    first, spliced = detached
                    body = [*first, spliced]
            upload = upload_append_leased(lease=lease, body=body, checksum=request["checksum"])
        except Exception as error:  # noqa: BLE001 - the body is read: we answer, as Django would
            return _error(error)
        finally:
            if spliced is not None:
                _discard_rest(spliced)
        headers = [(b"vary", b"origin"), (b"upload-offset", str(upload.offset).encode())]
        if not upload.is_complete:
            headers.append((b"upload-expires", http_date(upload.expires_at).encode()))
        return 204, headers, b""

    def _authenticated(self, authorization: bytes):
        http = HttpRequest()
        http.method = "PATCH"
        http.META["HTTP_AUTHORIZATION"] = authorization.decode("latin-1")
        found = BearerTokenAuthentication().authenticate(
            Request(http, parser_context={"view": self.view})
        )
        if found is None or not found[0].is_authenticated or not found[0].is_active:
            raise _Pass
        return found[0]


def _splices(request: dict, upload: Upload) -> bool:
    """Whether the kernel should move this body from the socket to the file: a body of a known
    length of at least TUS_SPLICE_MIN_BYTES, without a checksum (which needs the bytes), bound
    for a store that writes files (disk, not S3)."""
    length = request["content_length"]
    if not settings.TUS_SPLICE_MIN_BYTES or request["checksum"] is not None:
        return False
    if length is None or length < settings.TUS_SPLICE_MIN_BYTES:
        return False
    try:
        store = store_of(upload, default_storage)
    except Exception:  # noqa: BLE001 - upload_append_leased meets it again, and answers it
        return False
    return getattr(store, "splices", False)


def _detached(scope: dict, length: int) -> tuple[list[bytes], SocketBody] | None:
    """The body's parsed bytes and its socket, from the event loop; None (the body streams as
    usual) when the server offers none, or no pipe or descriptor could be made (the server's
    detach_body changes nothing until its last step, which cannot fail)."""
    try:
        return async_to_sync(detach)(scope, length)
    except Exception as error:  # noqa: BLE001 - detach changed nothing: the body streams
        logger.warning("upload body not spliced: %s", error)
        return None


def _discard_rest(spliced: SocketBody) -> None:
    """After an error cut the append short (the disk full, the lease lost): the rest of the
    body, which the client is still sending, is read and dropped before the answer."""
    try:
        spliced.discard()
    except OSError as error:  # the client's socket failed: it hears nothing either way
        logger.info("upload body left unread: %s", error)
    finally:
        spliced.close()


def _close_old_connections() -> None:
    """As at the start and end of a Django request (``close_old_connections``: connections
    past DATABASE_CONN_MAX_AGE, broken, or left mid-transaction are closed; PostgreSQL's go
    back to their pool), except that a healthy SQLite connection stays open in this worker
    thread, which serves the next PATCH: a file has no server to go away, and opening one
    (its PRAGMAs, its functions) cost about a tenth of a 5 MiB PATCH's time."""
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "sqlite" and connection.connection is not None:
            connection.close_at = None
    close_old_connections()


def _eligible(scope) -> dict | None:
    """What the fast path needs from the request's headers; None when Django must answer."""
    headers = scope_headers(scope)
    authorization = headers.get(b"authorization", b"")
    if (
        headers.get(b"tus-resumable") != TUS_VERSION.encode()
        or authorization[:7].lower() != b"bearer "
        or _REFUSED.intersection(headers)
        or headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")
        != OFFSET_CONTENT_TYPE
        or not host_allowed(headers)
    ):
        return None
    secure = is_secure_scope(scope, headers)
    if settings.SECURE_SSL_REDIRECT and not secure:
        return None
    try:
        offset = parse_non_negative("Upload-Offset", _text(headers.get(b"upload-offset")))
        length = _text(headers.get(b"content-length"))
        content_length = parse_non_negative("Content-Length", length) if length else None
        checksum: Checksum | None = parse_checksum(_text(headers.get(b"upload-checksum")))
    except ProtocolError:
        return None
    offered = "" if settings.TRUSTED_PROXIES else _text(headers.get(_REQUEST_ID)) or ""
    return {
        "authorization": authorization,
        "offset": offset,
        "content_length": content_length,
        "checksum": checksum,
        "secure": secure,
        "request_id": request_id_for(offered),
    }


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _error(error: Exception) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer DRF's exception handler gives the view's error (status, headers, JSON)."""
    outage = unavailable_for(error)
    if outage is not None:
        error = outage
    if not isinstance(error, DomainError | APIException):
        logger.exception("upload append failed", exc_info=error)
        body = JSONRenderer().render({"detail": "Server error.", "reason": "server_error"})
        return 500, [(b"vary", b"origin")], body
    response = api_exception_handler(error, {})
    if response is None:  # unreachable: a DomainError or an APIException always has one
        raise error
    headers = [(b"vary", b"origin")]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() not in ("content-type", "vary")
    ]
    return response.status_code, headers, JSONRenderer().render(response.data)
