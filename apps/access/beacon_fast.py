"""Beacons without Django's stack: the accepted beacon answered at the ASGI layer.

Every viewer's player posts a beacon a minute (apps/access/audience.py). Through Django one costs
about 5 ms of CPU on these machines, of which the beacon's own work (an HMAC over the session,
one to four statements) is the smaller part; the rest is the request's trip through fifteen
middleware and DRF's view machinery, for an answer that is a bare 204. Measured against the
issue's goal (500 viewers' beacons a minute under 5 % of one core), that trip was the difference
(tests/benchmarks/beacons.py).

This layer answers exactly the accepted case, with the same functions the view calls: the body
read (at most BEACON_MAX_BYTES) and parsed as DRF's JSON parser does (strict, depth-limited),
``beacon_parse``, the view's own rate limit (DRF's throttle class, counting in the same cache
entries), then ``beacon_record`` in Django's thread with its connection handling. Anything else
goes on to Django with the body it sent, and Django answers as the reference: a body too large,
malformed or refused, a session refused, a content gone, a rate limit reached or a cache away,
a database error, a Host Django would refuse, a plain-http request production redirects, a
cross-origin request (CORS headers are django-cors-headers' to give). The 204 carries the
headers Django's would (tests/access/test_beacon_fast.py compares the two header by header).

Why by hand: no library answers part of a Django view's traffic before Django; this is the same
few dozen lines of ASGI as apps/access/stream_fast.py around the view's own functions.
"""

import json
import re
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections
from django.http import HttpRequest

from apps.access.audience import BEACON_MAX_BYTES, BeaconInvalid, beacon_parse, beacon_record
from apps.access.stream_fast import host_allowed, is_secure_scope, site_headers
from streamgate.client_address import client_address, trusted_networks
from streamgate.edge import scope_headers
from streamgate.metrics import BEACON_FAST_RESPONSES
from streamgate.observability import REQUEST_ID_HEADER, request_id_for
from streamgate.parsers import MAX_JSON_DEPTH, json_depth
from streamgate.throttling import StrictScopedRateThrottle

ROUTE = re.compile(
    r"^/api/v1/contents/"
    r"(?P<content>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/beacons/\Z"
)
# What Django's answer to an accepted beacon carries besides the site's headers: DRF's APIView
# names the methods it allows, django-cors-headers says /api/ answers vary by Origin.
_VIEW_HEADERS = ((b"allow", b"POST, OPTIONS"), (b"vary", b"origin"), (b"content-length", b"0"))
_TYPES = (b"application/json", b"text/plain")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_SERVED = BEACON_FAST_RESPONSES.labels(outcome="served")
_PASSED = BEACON_FAST_RESPONSES.labels(outcome="pass")


class _Pass(Exception):
    """Django answers this request."""


class _ThrottleView:
    throttle_scope = "beacons"


class BeaconFast:
    """ASGI middleware: record an accepted beacon and answer 204 as Django's view would; pass
    every other request to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        found = (
            ROUTE.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read(receive)
        try:
            if not complete or len(body) > BEACON_MAX_BYTES:
                raise _Pass
            headers = await self._answer(scope, found["content"], body)
        except _Pass:
            _PASSED.inc()
            await self.app(scope, _replay(body, complete, receive), send)
            return
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        _SERVED.inc()

    async def _answer(self, scope, content: str, body: bytes) -> list[tuple[bytes, bytes]]:
        headers = scope_headers(scope)
        secure = is_secure_scope(scope, headers)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if (
            kind not in _TYPES
            or b"origin" in headers
            and not _same_origin(headers[b"origin"], headers, secure)
            or (settings.SECURE_SSL_REDIRECT and not secure)
            or not host_allowed(headers)
        ):
            raise _Pass
        session, events = _parsed(body)
        client = scope.get("client") or ("", 0)
        address = client_address(
            peer=client[0],
            forwarded_for=headers.get(b"x-forwarded-for", b"").decode("latin-1"),
            trusted=trusted_networks(tuple(settings.TRUSTED_PROXIES)),
        )
        await _record(uuid.UUID(content), session, events, address or None)
        request_id = request_id_for(headers.get(_REQUEST_ID, b"").decode("latin-1"))
        return [
            *_VIEW_HEADERS,
            *site_headers(secure),
            (_REQUEST_ID, request_id.encode("latin-1")),
        ]


def _same_origin(origin: bytes, headers: dict[bytes, bytes], secure: bool) -> bool:
    """A browser's Origin naming this very site (sendBeacon and fetch send one on a POST)."""
    scheme = b"https://" if secure else b"http://"
    return origin == scheme + headers.get(b"host", b"")


def _parsed(body: bytes) -> tuple[str, list[dict]]:
    """The session and events, as the view's parser and ``beacon_parse`` read them."""
    try:
        text = body.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise _Pass
        data = json.loads(text, parse_constant=_refuse_constant)
        return beacon_parse(data)
    except (ValueError, BeaconInvalid):  # UnicodeDecodeError and JSONDecodeError included
        raise _Pass from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


@sync_to_async
def _record(content_id: uuid.UUID, session: str, events: list[dict], address: str | None) -> None:
    """The view's work, in Django's thread, with the connection handling a request gets
    (request_started and request_finished close connections past their age or broken)."""
    close_old_connections()
    try:
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = address or ""
        request.user = AnonymousUser()  # the view authenticates no one: DRF's anonymous user
        if not StrictScopedRateThrottle().allow_request(request, _ThrottleView()):
            raise _Pass  # Django's throttle refuses it too, with its Retry-After
        beacon_record(content_id=content_id, session_text=session, events=events, address=address)
    except _Pass:
        raise
    except Exception as error:
        raise _Pass from error
    finally:
        close_old_connections()


async def _read(receive) -> tuple[bytes, bool]:
    """The request body, read no further than past BEACON_MAX_BYTES, and whether it is all of
    it (False also when the client went away: Django's next receive says so)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body, False
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, True
        if len(body) > BEACON_MAX_BYTES:
            return body, False


def _replay(body: bytes, complete: bool, receive):
    """A ``receive`` that gives Django the body already read, then the rest of the request."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
