"""Remembered key decisions: the key URL's hot case answered before Django.

An encrypted content's key is fetched once per key URL by script players and once per segment
by Chromium's native HLS, so a busy site's key requests grow with its viewers and their videos'
length; through Django each costs about 7 ms of CPU on these machines (the middleware, the
token, the content, the viewer, their wallets, the gate's ownership answers, the wrapped key).
Here the yes Django's view gave (apps/access/content_keys.py) is remembered in Redis for
``KEY_DECISION_SECONDS`` per (content, viewer), and an ASGI layer in front of Django
(``KeyFiles``) answers the next GET of that key from it: the key token's HMAC, one Redis round
trip, the 16 bytes from this process's memory.

What makes a remembered yes safe to replay:

- It holds the generations of what the decision read, as they stood *before* Django decided:
  the content's (its gate, owner, published job, keys), the viewer's (active, staff, their
  wallets) and the chains' (every ownership, purchase, rental or membership answer the indexer
  invalidates). Writes move them: ``post_save``/``post_delete`` of Content, DeliveryEncryption,
  the user model and WalletAccount, and every ``ownership_invalidate``. The layer replays only
  while all three are unchanged, so a gate tightened, a wallet unlinked, a viewer deactivated or
  a token sold fails the next key fetch, as it does through Django. A write that bypasses
  signals (a bulk ``update()``, raw SQL) is seen at the latest when the decision lapses.
- It lapses at ``KEY_DECISION_SECONDS`` or when the viewer's rental or membership ends,
  whichever is first; the key token's own expiry is checked on every request.
- The key itself never leaves the process: the layer answers only keys this process's Django
  has read for that job (content keys are stored wrapped, apps/transcode/keys.py); any other
  request, a refusal, a preflight, a HEAD, a Host or scheme Django would decide, Redis away, is
  Django's, which stays the reference (tests/access/test_key_fast.py compares the answers).

On only when the cache is Redis (shared by every web process and the workers whose events move
the chains' generation); the embedded single-machine setup sends every key request to Django.

Why by hand: this is a capability check (a signed token, then a decision whose invalidation
follows our models' writes) in front of one 16-byte answer; no library caches authorization
decisions keyed on our own invalidation events.
"""

import logging
import re
import secrets
import time
import uuid
from collections import OrderedDict

from django.conf import settings
from django.core.cache import caches
from redis.exceptions import RedisError

from apps.access.playback import playback_keys
from apps.access.playback_tokens import TokenRejected, key_token_verify
from apps.access.stream_cors import EXPOSE_HEADERS
from apps.access.stream_fast import host_allowed, is_secure_scope, site_headers
from streamgate.edge import AsyncRedis, cache_is_redis, scope_headers
from streamgate.metrics import KEY_FAST_RESPONSES
from streamgate.observability import REQUEST_ID_HEADER, request_id_for

logger = logging.getLogger(__name__)

ROUTE = re.compile(
    r"^/keys/(?P<content>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/"
    r"(?P<kid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.key\Z"
)
CHAINS = "chains"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_SERVED = KEY_FAST_RESPONSES.labels(outcome="served")
_PASSED = KEY_FAST_RESPONSES.labels(outcome="pass")
# A generation outlives every decision stored with it many times over; an expired one reads as
# missing ("0"), which no decision made since its last move holds.
GENERATION_SECONDS = 24 * 3600
KEYS_REMEMBERED = 10_000


def decisions_enabled() -> bool:
    return settings.KEY_DECISION_SECONDS > 0 and cache_is_redis()


def _name(*parts: str) -> str:
    return caches["default"].make_key("keys:" + ":".join(parts))


def _names(content_id: str, viewer: int | None) -> list[str]:
    """Redis keys of (the decision, the content's, the viewer's and the chains' generations)."""
    who = str(viewer) if viewer is not None else "-"
    return [
        _name("allow", content_id, who),
        _name("gen", "content", content_id),
        _name("gen", "viewer", who),
        _name("gen", CHAINS),
    ]


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else "0"


def generations_read(content_id: str, viewer: int | None) -> list[str] | None:
    """The generations a decision about to be made depends on; None: nothing is remembered
    (not Redis, or Redis away)."""
    if not decisions_enabled():
        return None
    try:
        return [_text(value) for value in _redis().mget(_names(content_id, viewer)[1:])]
    except RedisError as error:
        logger.warning("key decisions: generations unreadable", extra={"error": repr(error)})
        return None


def decision_remember(
    *, content_id: str, viewer: int | None, generations: list[str], job_id: str, until: float
) -> None:
    """Remember Django's yes for (content, viewer) until ``until`` at the latest."""
    seconds = min(settings.KEY_DECISION_SECONDS, until - time.time())
    if seconds < 1:
        return
    entry = "|".join([*generations, job_id, f"{until:.0f}"])
    try:
        _redis().set(_names(content_id, viewer)[0], entry, ex=int(seconds))
    except RedisError as error:
        logger.warning("key decisions: not remembered", extra={"error": repr(error)})


def decisions_forget(*, content_id: str | None = None, viewer: int | None = None) -> None:
    """Move the generation of a content, a viewer, or (neither given) the chains: every
    remembered decision that read it goes to Django again."""
    if not decisions_enabled():
        return
    if content_id is not None:
        name = _name("gen", "content", content_id)
    elif viewer is not None:
        name = _name("gen", "viewer", str(viewer))
    else:
        name = _name("gen", CHAINS)
    try:
        _redis().set(name, secrets.token_hex(8), ex=GENERATION_SECONDS)
    except RedisError as error:
        # What it guarded lapses within KEY_DECISION_SECONDS; say so loudly.
        logger.error("key decisions: a generation did not move", extra={"error": repr(error)})


class _Keys:
    """The HLS keys this process's Django has read, by job: (kid, key). Least recently used
    dropped first; a job's key never changes (re-encryption makes a new job)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, tuple[uuid.UUID, bytes]] = OrderedDict()

    def put(self, job_id: str, kid: uuid.UUID, key: bytes) -> None:
        self._keys[job_id] = (kid, key)
        self._keys.move_to_end(job_id)
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)

    def get(self, job_id: str) -> tuple[uuid.UUID, bytes] | None:
        found = self._keys.get(job_id)
        if found is not None:
            self._keys.move_to_end(job_id)
        return found

    def clear(self) -> None:
        self._keys.clear()


KEYS = _Keys(KEYS_REMEMBERED)


def _replayable(entry: bytes | None, generations: list[bytes | None]) -> tuple[str, float] | None:
    """(job id, until) of a remembered decision whose generations all stand, else None."""
    if entry is None:
        return None
    *held, job_id, until = entry.decode().split("|")
    if held != [_text(value) for value in generations] or float(until) <= time.time():
        return None
    return job_id, float(until)


class KeyFiles:
    """ASGI middleware: answer GET of an HLS key from a remembered decision; pass every other
    request to ``app``."""

    def __init__(self, app) -> None:
        self.app = app
        self._redis: AsyncRedis | None = None

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith("/keys/")
            or not decisions_enabled()
        ):
            await self.app(scope, receive, send)
            return
        answer = await self._answer(scope)
        if answer is None:
            _PASSED.inc()
            await self.app(scope, receive, send)
            return
        headers, body = answer
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        _SERVED.inc()

    async def _answer(self, scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        found = ROUTE.match(scope["path"])
        if found is None:
            return None
        headers = scope_headers(scope)
        secure = is_secure_scope(scope, headers)
        if (settings.SECURE_SSL_REDIRECT and not secure) or not host_allowed(headers):
            return None
        token = _query_token(scope.get("query_string", b""))
        if not token:
            return None
        content_id = found["content"]
        try:
            grant = key_token_verify(
                token, content_id=content_id, keys=playback_keys(), now=time.time()
            )
        except TokenRejected:
            return None  # Django logs why and answers 403
        remembered = await self._remembered(content_id, grant.viewer)
        if remembered is None:
            return None
        job_id, _until = remembered
        key = KEYS.get(job_id)
        if key is None or str(key[0]) != found["kid"]:
            return None  # not read by this process yet, or a key of another job: Django's
        request_id = request_id_for(headers.get(_REQUEST_ID, b"").decode("latin-1"))
        return [
            (b"content-type", b"application/octet-stream"),
            (b"cache-control", b"no-store"),
            (b"content-length", b"16"),
            *site_headers(secure),
            (_REQUEST_ID, request_id.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            (b"access-control-allow-origin", b"*"),
        ], key[1]

    async def _remembered(self, content_id: str, viewer: int | None) -> tuple[str, float] | None:
        if self._redis is None:
            self._redis = AsyncRedis()
        breaker = self._redis.breaker
        if not breaker.allow():
            return None
        try:
            entry, *generations = await self._redis.client().mget(_names(content_id, viewer))
        except (RedisError, OSError) as error:
            breaker.failed(error)
            return None
        breaker.answered()
        return _replayable(entry, generations)


def _query_token(query: bytes) -> str:
    """The ``k`` parameter when it is the query's only one (anything else: Django decides)."""
    text = query.decode("latin-1")
    if not text.startswith("k=") or "&" in text or "%" in text or "+" in text:
        return ""
    return text[2:]
