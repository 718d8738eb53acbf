"""How long a web request waits on PostgreSQL.

psycopg waits for the server's answer without a limit. A server that stops answering while
something still acknowledges its packets (a paused container, a hung host, a proxy) then holds
the request, and its pooled connection, for ever; the pool's health check on checkout hangs the
same way. Inside a web request (HTTP or websocket: the ASGI application runs in
``database_wait_limit``), every wait on a connection is bounded instead: past the limit the
connection, which is mid-query and unusable, is closed, and an ``OperationalError`` raised,
which the request answers as 503 (streamgate/outages.py). Tasks and management commands set no
limit, so a long migration or report is never cut short.

Once a wait has timed out, the next waits get a short patience (``SUSPECT_WAIT_SECONDS``) until
some query is answered again: one unresponsive server costs the first request the full limit,
not every request and every pooled connection it tries.
"""

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors

SUSPECT_WAIT_SECONDS = 0.5
_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "database_wait_limit", default=None
)


class _Suspicion:
    """Whether a bounded wait timed out with no answer since, in this process. (A plain flag:
    racing threads at worst give one wait the other patience.)"""

    suspect = False


@contextmanager
def database_wait_limit(seconds: float | None) -> Iterator[None]:
    """Bound every database wait made in this context (and the threads it hands work to, which
    inherit it) to ``seconds``; None: no bound."""
    token = _limit.set(seconds)
    try:
        yield
    finally:
        _limit.reset(token)


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose waits honour ``database_wait_limit`` (the pool makes these)."""

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        limit = _limit.get()
        if limit is None:
            return super().wait(gen, interval, timeout)
        patience = min(limit, SUSPECT_WAIT_SECONDS) if _Suspicion.suspect else limit
        if timeout is not None:
            patience = min(patience, timeout)
        try:
            result = super().wait(gen, min(interval, patience), patience)
        except errors._WaitTimeout:  # psycopg's own signal that ``timeout`` ran out
            _Suspicion.suspect = True
            self.pgconn.finish()  # mid-query: closed, so that neither Django nor the pool reuses it
            raise psycopg.OperationalError(
                f"the database did not answer within {patience:g} s"
            ) from None
        _Suspicion.suspect = False
        return result


class DatabaseWaitLimit:
    """ASGI middleware: run each request (HTTP or websocket) in ``database_wait_limit``."""

    def __init__(self, app: Callable[..., Awaitable[None]], seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with database_wait_limit(self.seconds):
            await self.app(scope, receive, send)
