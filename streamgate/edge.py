"""The edge: the content API's reads answered from Redis before Django runs.

A player polling the catalog costs Django a thread hop, fifteen middleware, a token lookup in
PostgreSQL and DRF's machinery, about 6 ms per read on these machines, even when the page
itself comes from the cache. The edge is an ASGI layer in front of Django that keeps the whole
HTTP response (status, headers, body) of a cacheable read and replays it to the next identical
request with a Redis read and a PostgreSQL one (about 1 ms).

What makes a read cacheable, and a replay correct:

- Only ``GET /api/v1/contents/`` and ``GET /api/v1/contents/<id>/``, anonymous or with a bearer
  token, and no cookies (a browser's session requests always go to Django).
- Django decides: the view marks a response it is willing to have replayed (``EDGE_MARKER``,
  with the token's expiry and the cache versions the view read before its query); the edge
  stores only a 200 so marked, without Set-Cookie, varying on nothing outside the key. The
  marker never reaches the client.
- The key is everything the response may depend on: the token (a hash of it, unlike the
  database's), path and query, scheme, Host and the forwarding headers, Origin (CORS), Accept.
- An entry holds the ``auth`` version the edge read *before* Django ran and the content
  versions the view read before its query (``apps.content.cache``: ``public``, plus the
  caller's own or staff's for pages that show unpublished contents). Before a replay the edge
  reads them all again from PostgreSQL in one query, and replays only while all are unchanged
  and the token has not expired. PostgreSQL's triggers move them on every write that could
  change an answer or who may have it (``streamgate.versions``): a revoked token, a
  deactivated user, a bulk update, a data migration; a change made while Django was answering
  leaves an entry that is stale from the start.
- Entries live in Redis (shared by every web process) and, for the busiest ones, in the
  process's memory too (``EDGE_MEMORY_BYTES``, least recently used dropped first), which saves
  the Redis read; a remembered entry is checked against the versions exactly as one from Redis,
  and one that is no longer current is forgotten.
- Each replay gets its own X-Request-ID. If Redis or PostgreSQL fails, requests go to Django,
  which has its own fallbacks (503s); while Redis stays away (its breaker is open,
  streamgate/breaker.py) they go to Django at once, without waiting on it.

The edge is on when the cache is Redis and the database PostgreSQL (``EDGE_CACHE``, default:
whenever ``REDIS_URL`` is set); the embedded, single-machine setup goes straight to Django.
"""

import asyncio
import hashlib
import json
import logging
import re
import time
import weakref
from collections import OrderedDict

from django.conf import settings
from django.core.cache import caches
from django.utils.http import parse_etags
from django_redis.cache import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamgate.breaker import breaker_for_url
from streamgate.metrics import EDGE_RESPONSES
from streamgate.observability import REQUEST_ID_HEADER, request_id_for
from streamgate.versions import AUTH, PAGE_TTL, AsyncVersions, versions_enabled

logger = logging.getLogger(__name__)

ROUTE = re.compile(r"^/api/v1/contents/(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}/)?$")
EDGE_MARKER = "X-StreamGate-Edge"
SCOPE_FLAG = "streamgate.edge"  # set in the ASGI scope of the requests the edge may keep
MAX_BODY = 512 * 1024
_MARKER = EDGE_MARKER.lower().encode()
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
# What the response may depend on besides the path, the query and the caller: absolute URLs
# (host and scheme, also as a proxy forwards them), CORS (origin), content negotiation (accept).
_KEYED_HEADERS = (
    b"host",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"forwarded",
    b"origin",
    b"accept",
)
# Cookie: requests with cookies are never the edge's; authorization: the caller is in the key.
_VARY_COVERED = {*_KEYED_HEADERS, b"cookie", b"authorization", b""}
_NOT_STORED = {_MARKER, _REQUEST_ID, b"date", b"server"}
_OUTCOMES = {outcome: EDGE_RESPONSES.labels(outcome=outcome) for outcome in ("hit", "miss", "pass")}


def edge_mark(response, *, request, versions: dict[str, int] | None) -> None:
    """Let the edge replay ``response`` to identical requests while ``versions`` (cache version
    numbers the view read before its query) stand: called by views whose answer depends only
    on the key's parts. Only requests the edge asked about are marked (it removes the marker
    before the response leaves), and session-authenticated answers never."""
    django_request = getattr(request, "_request", request)
    if not versions or not (getattr(django_request, "scope", None) or {}).get(SCOPE_FLAG):
        return
    # A bearer token's ``request.auth`` (access's ApiToken) carries its expiry; a session's is
    # None.
    auth = request.auth
    if request.user.is_authenticated and not hasattr(auth, "expires_at"):
        return  # a session, not a bearer token
    expires = getattr(auth, "expires_at", None)
    until = int(expires.timestamp()) if expires else 0
    response[EDGE_MARKER] = json.dumps({"until": until, "versions": versions})


def scope_headers(scope) -> dict[bytes, bytes]:
    """An ASGI scope's headers by lower-case name, repeated ones joined with commas."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found[name] = found[name] + b"," + value if name in found else value
    return found


def _key(scope, headers: dict[bytes, bytes]) -> str | None:
    """The entry's key, or None when this request is not the edge's to answer."""
    if scope["method"] != "GET" or not ROUTE.match(scope["path"]) or b"cookie" in headers:
        return None
    authorization = headers.get(b"authorization")
    if authorization is None:
        who = "anon"
    else:
        kind, _, token = authorization.partition(b" ")
        if kind.lower() != b"bearer" or not token or b" " in token.strip():
            return None
        who = hashlib.sha256(b"streamgate-edge:" + token.strip()).hexdigest()
    parts = (
        scope["path"].encode(),
        scope.get("query_string", b""),
        scope.get("scheme", "http").encode(),
        *(headers.get(name, b"") for name in _KEYED_HEADERS),
    )
    digest = hashlib.sha256(b"\x00".join(parts)).hexdigest()
    return f"edge:{who}:{digest}"


def cache_is_redis() -> bool:
    return isinstance(caches["default"], RedisCache)


class AsyncRedis:
    """A redis.asyncio client per event loop (tests run several loops in one process)."""

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # Shared with Django's cache: one failure makes both skip Redis until it answers.
        self.breaker = breaker_for_url(settings.CACHES["default"]["LOCATION"])

    def client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.CACHES["default"]["LOCATION"],
                max_connections=200,
                timeout=2,
                socket_timeout=2,
                socket_connect_timeout=2,
            )
            client = self._clients[loop] = redis.asyncio.Redis(connection_pool=pool)
        return client


class _Memory:
    """Decoded entries by key, at most ``limit`` bytes of bodies and headers, least recently
    used dropped first. One per process; the event loop is its only user."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._entries: OrderedDict[str, tuple[dict, list, bytes, int]] = OrderedDict()

    def get(self, key: str):
        found = self._entries.get(key)
        if found is None:
            return None
        meta, headers, body, _size = found
        if time.time() - meta.get("at", 0) >= PAGE_TTL:  # as long as Redis keeps it, no longer
            self.forget(key)
            return None
        self._entries.move_to_end(key)
        return meta, list(headers), body  # the caller appends its own X-Request-ID

    def put(self, key: str, entry) -> None:
        meta, headers, body = entry
        size = len(body) + sum(len(n) + len(v) for n, v in headers) + 256
        if size > self.limit:
            return
        self.forget(key)
        self._entries[key] = (meta, list(headers), body, size)
        self.size += size
        while self.size > self.limit:
            _key, (*_, dropped) = self._entries.popitem(last=False)
            self.size -= dropped

    def forget(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.size -= found[3]


def _replayable(headers) -> bool:
    """No cookie is set, and the response varies on nothing the key does not cover (a
    compression middleware added one day would vary on Accept-Encoding, say)."""
    for name, value in headers:
        name = name.lower()
        if name == b"set-cookie":
            return False
        if name == b"vary":
            varies = {v.strip().lower() for v in value.split(b",")}
            if not varies <= _VARY_COVERED:
                return False
    return True


def _encode(meta: dict, body: bytes) -> bytes:
    return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + body


def _decoded(entry: bytes | None):
    """A stored entry's (meta, headers, body), or None (none, or unreadable)."""
    if entry is None:
        return None
    try:
        meta, _, body = entry.partition(b"\n")
        meta = json.loads(meta)
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in meta["headers"]]
        return meta, headers, body
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None


# What a 304 leaves out (RFC 9110 15.4.5: it carries the validators and caching headers only).
_NOT_IN_304 = {b"content-type", b"content-length", b"content-language", b"content-encoding"}


def _holds(offered: bytes | None, stored) -> bool:
    """Whether the request's If-None-Match names the entry's ETag (weak comparison)."""
    etag = next((v for n, v in stored if n.lower() == b"etag"), None)
    if not offered or etag is None:
        return False
    wanted = etag.decode("latin-1").removeprefix("W/")
    tags = parse_etags(offered.decode("latin-1"))
    return any(tag == "*" or tag.removeprefix("W/") == wanted for tag in tags)


def _current(meta: dict, now: dict[str, int]) -> bool:
    """Whether an entry may be replayed: no version it was stored under has moved since, and
    its token has not expired."""
    if meta["auth"] != now[AUTH] or (meta["until"] and meta["until"] <= time.time()):
        return False
    return all(now[scope] == value for scope, value in meta["versions"].items())


class EdgeCache:
    """ASGI middleware: replay cached content API reads, pass everything else to ``app``."""

    def __init__(self, app) -> None:
        self.app = app
        self.enabled = bool(settings.EDGE_CACHE)
        if self.enabled and not (cache_is_redis() and versions_enabled()):
            logger.warning(
                "EDGE_CACHE is on but the cache is not Redis or the database not PostgreSQL: "
                "the edge is off"
            )
            self.enabled = False
        self._redis = AsyncRedis() if self.enabled else None
        self._memory = _Memory(settings.EDGE_MEMORY_BYTES)
        self._versions = AsyncVersions()

    async def __call__(self, scope, receive, send) -> None:
        key = None
        if self.enabled and scope["type"] == "http":
            headers = scope_headers(scope)
            key = _key(scope, headers)
        if key is None:
            await self.app(scope, receive, send)
            return
        breaker = self._redis.breaker
        # While Redis is away the edge steps aside, memory included: the breaker's trial call,
        # which finds out that Redis is back, must go to Redis.
        entry = self._memory.get(key) if breaker.open_since is None else None
        remembered = entry is not None
        if not remembered and not breaker.allow():
            # Redis failed moments ago: do not wait on it.
            _OUTCOMES["pass"].inc()
            await self.app(scope, receive, send)
            return
        client = self._redis.client()
        if not remembered:
            try:
                entry = _decoded(await client.get(key))
            except Exception as error:  # noqa: BLE001 - Django answers without the edge
                if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
                    self._redis.breaker.failed(error)
                logger.warning("edge cache unavailable", extra={"error": repr(error)})
                _OUTCOMES["pass"].inc()
                await self.app(scope, receive, send)
                return
            self._redis.breaker.answered()
        try:
            now = await self._versions.read([AUTH, *(entry[0]["versions"] if entry else ())])
        except Exception as error:  # noqa: BLE001 - Django answers (a 503 if it must)
            logger.warning("edge: cache versions unavailable", extra={"error": repr(error)})
            _OUTCOMES["pass"].inc()
            await self.app(scope, receive, send)
            return
        if entry is not None and _current(entry[0], now):
            if not remembered:
                self._memory.put(key, (entry[0], list(entry[1]), entry[2]))
            meta, stored, body = entry
            request_id = request_id_for(headers.get(_REQUEST_ID, b"").decode("latin-1"))
            stored.append((_REQUEST_ID, request_id.encode()))
            code = meta["status"]
            if _holds(headers.get(b"if-none-match"), stored):  # the client has this answer
                code, body = 304, b""
                stored = [(n, v) for n, v in stored if n.lower() not in _NOT_IN_304]
            await send({"type": "http.response.start", "status": code, "headers": stored})
            await send({"type": "http.response.body", "body": body})
            _OUTCOMES["hit"].inc()
            return
        self._memory.forget(key)
        _OUTCOMES["miss"].inc()
        await self._answer_and_store(
            {**scope, SCOPE_FLAG: True}, receive, send, client, key, now[AUTH]
        )

    async def _answer_and_store(self, scope, receive, send, client, key, auth: int) -> None:
        kept = {"start": None, "body": [], "size": 0, "done": False, "marker": None}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                marker = None
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == _MARKER:
                        marker = value
                    else:
                        headers.append((name, value))
                message = {**message, "headers": headers}
                if marker is not None and message["status"] == 200 and _replayable(headers):
                    kept["marker"] = json.loads(marker)
                    kept["start"] = message
            elif message["type"] == "http.response.body" and kept["start"] is not None:
                kept["size"] += len(message.get("body", b""))
                if kept["size"] <= MAX_BODY:
                    kept["body"].append(message.get("body", b""))
                kept["done"] = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        if kept["start"] is None or not kept["done"] or kept["size"] > MAX_BODY:
            return
        headers = kept["start"]["headers"]
        kept_headers = [(n, v) for n, v in headers if n.lower() not in _NOT_STORED]
        meta = {
            "at": time.time(),  # kept PAGE_TTL, in Redis and in memory
            "auth": auth,  # read before Django ran
            "versions": kept["marker"]["versions"],  # read by the view before its query
            "until": kept["marker"]["until"],
            "status": kept["start"]["status"],
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in kept_headers],
        }
        body = b"".join(kept["body"])
        self._memory.put(key, (meta, kept_headers, body))
        if not self._redis.breaker.allow():
            return
        try:
            await client.set(key, _encode(meta, body), ex=PAGE_TTL)
        except Exception as error:  # noqa: BLE001 - the answer was sent; keeping it is optional
            if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
                self._redis.breaker.failed(error)
            logger.warning("edge entry not stored", extra={"error": repr(error)})
