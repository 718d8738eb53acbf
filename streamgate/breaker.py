"""Fail fast while Redis is away, instead of waiting out a socket timeout at every call.

A request touches Redis several times (rate limits, the token and page caches, version bumps,
progress messages). When Redis stops answering, each touch would wait its socket timeout (2 s),
and a request seconds more. One breaker per Redis server and process remembers the failure:
while it is open, calls fail at once (``CircuitOpen``, a redis ``ConnectionError``, so every
caller's existing fallback applies), except one trial per ``COOLDOWN_SECONDS``, made by whoever
asks first (a thread, or an asyncio task); the first answer from the server closes it again.

``BreakerConnection`` puts Django's cache (django-redis) behind it; the edge and progress
messages, which use their own asyncio clients, ask ``breaker_for_url`` before calling.
"""

import asyncio
import logging
import threading
import time
from urllib.parse import urlsplit

from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

COOLDOWN_SECONDS = 1.0


class CircuitOpen(RedisConnectionError):
    """Not sent: this Redis server failed moments ago (streamgate/breaker.py)."""


def _caller() -> int:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        task = None
    return id(task) if task is not None else threading.get_ident()


class Breaker:
    def __init__(self, server: str, kind: str = "redis") -> None:
        self.server = server
        self.kind = kind
        self._lock = threading.Lock()
        self.open_since: float | None = None
        self._retry_at = 0.0
        self._trial_by: int | None = None

    def allow(self) -> bool:
        """Whether a call may go to the server now: always while it answers; while it does
        not, only the trial (one caller per cooldown)."""
        if self.open_since is None:
            return True
        caller = _caller()
        with self._lock:
            if self.open_since is None or self._trial_by == caller:
                return True
            now = time.monotonic()
            if now >= self._retry_at:
                self._trial_by, self._retry_at = caller, now + COOLDOWN_SECONDS
                return True
        return False

    def failed(self, error: BaseException) -> None:
        with self._lock:
            opened = self.open_since is None
            now = time.monotonic()
            if opened:
                self.open_since = now
            self._retry_at, self._trial_by = now + COOLDOWN_SECONDS, None
        if opened:
            logger.warning(
                f"{self.kind} unavailable: failing fast until it answers",
                extra={"server": self.server, "error": f"{type(error).__name__}: {error}"[:300]},
            )

    def answered(self) -> None:
        if self.open_since is None:
            return
        with self._lock:
            since, self.open_since, self._trial_by = self.open_since, None, None
        if since is not None:
            logger.info(
                f"{self.kind} answers again",
                extra={"server": self.server, "down_seconds": round(time.monotonic() - since, 1)},
            )


_breakers: dict[str, Breaker] = {}
_registry_lock = threading.Lock()


def breaker_for(host: str, port: int | str) -> Breaker:
    server = f"{host}:{port}"
    found = _breakers.get(server)
    if found is None:
        with _registry_lock:
            found = _breakers.setdefault(server, Breaker(server))
    return found


def breaker_for_url(url: str) -> Breaker:
    parts = urlsplit(url)
    return breaker_for(parts.hostname or "localhost", parts.port or 6379)


_FAILURES = (RedisConnectionError, RedisTimeoutError)


class BreakerConnection(Connection):
    """A redis-py TCP connection that goes through its server's breaker."""

    @property
    def breaker(self) -> Breaker:
        return breaker_for(self.host, self.port)

    def connect_check_health(self, *args, **kwargs):
        if self._sock:
            return None
        if not self.breaker.allow():
            raise CircuitOpen(f"Redis at {self.host}:{self.port} failed moments ago")
        try:
            return super().connect_check_health(*args, **kwargs)
        except CircuitOpen:
            raise
        except _FAILURES as error:
            self.breaker.failed(error)
            raise

    def send_packed_command(self, command, check_health=True):
        if self._sock and not self.breaker.allow():
            raise CircuitOpen(f"Redis at {self.host}:{self.port} failed moments ago")
        try:
            return super().send_packed_command(command, check_health)
        except CircuitOpen:
            raise
        except _FAILURES as error:
            self.breaker.failed(error)
            raise

    def read_response(self, *args, **kwargs):
        try:
            response = super().read_response(*args, **kwargs)
        except CircuitOpen:
            raise
        except _FAILURES as error:
            self.breaker.failed(error)
            raise
        except ResponseError:
            self.breaker.answered()  # an error reply is still an answer
            raise
        self.breaker.answered()
        return response


def channel_layer_breaker() -> Breaker | None:
    """The breaker of the channel layer's Redis server; None for the filesystem layer."""
    from django.conf import settings

    config = settings.CHANNEL_LAYERS["default"]
    hosts = config.get("CONFIG", {}).get("hosts") or []
    if not config["BACKEND"].startswith("channels_redis") or not hosts:
        return None
    address = hosts[0]["address"] if isinstance(hosts[0], dict) else hosts[0]
    return breaker_for_url(address) if isinstance(address, str) else None
