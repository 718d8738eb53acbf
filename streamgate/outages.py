"""The one boundary where a dependency that is away becomes a 503 with ``Retry-After``.

A database, cache, broker or disk that does not answer (or is full, or read-only) is not a bug:
the request could not be served now and may be retried. ``outage_of`` recognises such errors by
type (and by the errors they were raised from): psycopg's ``OperationalError`` and
``InterfaceError`` that say the server is not answering (Django's wrap them), redis
``ConnectionError``/``TimeoutError`` (django-redis wraps them in ``ConnectionInterrupted``),
kombu's ``OperationalError``, and ``OSError`` ENOSPC, EROFS and EDQUOT. They become the one
``Unavailable`` domain error:

- in DRF views, in the exception handler (``streamgate.api_errors.api_exception_handler``);
- in plain Django views, in ``DependencyOutageMiddleware`` (JSON under /api/ and /stream/, the
  product's 503 page elsewhere);
- raised anywhere else in Django (a middleware saving the session), in ``server_error``, the
  handler500 that Django calls for whatever nothing else caught.

Each such answer is logged once (what was away, the error's type, the path; the request id is
added by the log filter) and counted in ``streamgate_dependency_unavailable_total``. Anything
else still reaches Django as a 500: that is a bug in our code.
"""

import errno
import logging
import sys
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.template import loader

from streamgate.exceptions import Unavailable, api_error
from streamgate.metrics import DEPENDENCY_UNAVAILABLE

logger = logging.getLogger(__name__)

DATABASE, CACHE, BROKER, STORAGE = "database", "cache", "broker", "storage"
REASON = "unavailable"
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})
# Seconds a client should wait: connection outages are usually a restart or a failover away; a
# full or read-only disk needs someone to act.
RETRY_AFTER = {DATABASE: 5, CACHE: 5, BROKER: 5, STORAGE: 30}
MESSAGES = {
    DATABASE: "The database is unavailable; try again shortly.",
    CACHE: "The cache is unavailable; try again shortly.",
    BROKER: "The task queue is unavailable; try again shortly.",
    STORAGE: "Storage is full or read-only; try again later.",
}
# Paths whose clients are programs: they get JSON, everyone else the 503 page.
JSON_PREFIXES = ("/api/", "/stream/")


def _database_away(error: BaseException) -> bool:
    """A driver error (Django's OperationalError wraps it) that says the server is not there to
    answer: one psycopg raises itself (no connection, the pool or a wait timed out, the
    connection is closed), or a server error of class 08 (connection), 53 (resources), 57
    (shutdown, cancelled) or 58 (system). An OperationalError that names a missing table (SQLite
    says so this way) stays a bug."""
    import sqlite3

    from psycopg import InterfaceError, OperationalError

    if isinstance(error, (OperationalError, InterfaceError)):
        state = getattr(error, "sqlstate", None)
        return state is None or state[:2] in ("08", "53", "57", "58")
    if isinstance(error, sqlite3.OperationalError):
        return str(error).startswith(SQLITE_AWAY)
    return False


SQLITE_AWAY = ("database is locked", "database or disk is full", "disk I/O error")


def _direct(error: BaseException) -> str | None:
    from kombu.exceptions import OperationalError as BrokerError
    from redis import exceptions as redis_errors

    if _database_away(error):
        return DATABASE
    if isinstance(
        error,
        (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.ReadOnlyError,
            redis_errors.OutOfMemoryError,
        ),
    ):
        return CACHE
    if isinstance(error, BrokerError):
        return BROKER
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        return STORAGE
    return None


def outage_of(error: BaseException) -> str | None:
    """Which dependency ``error`` says is away (``database``, ``cache``, ``broker``,
    ``storage``), following the errors it was raised from; None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _direct(current)
        if found is not None:
            return found
        current = current.__cause__
    return None


def unavailable(dependency: str) -> Unavailable:
    """The 503 for ``dependency`` being away."""
    return Unavailable(
        MESSAGES[dependency],
        reason=REASON,
        retry_after=RETRY_AFTER[dependency],
        dependency=dependency,
    )


def outage_recorded(dependency: str, error: BaseException, *, action: str, **fields) -> None:
    """Log one event (ids, never objects) and count it. ``action``: ``refused`` (answered
    503) or ``degraded`` (served without the dependency)."""
    DEPENDENCY_UNAVAILABLE.labels(dependency=dependency, action=action).inc()
    logger.warning(
        "dependency unavailable",
        extra={
            "dependency": dependency,
            "action": action,
            "error": f"{type(error).__name__}: {error}"[:300],
            **fields,
        },
    )


def unavailable_for(error: BaseException, *, path: str = "") -> Unavailable | None:
    """The Unavailable that ``error`` means, logged and counted; None when it is no outage."""
    if isinstance(error, Unavailable):
        return None  # already the domain error
    dependency = outage_of(error)
    if dependency is None:
        return None
    outage_recorded(dependency, error, action="refused", path=path)
    return unavailable(dependency)


def unavailable_response(request: HttpRequest, error: Unavailable) -> HttpResponse:
    """The 503 answer outside DRF: JSON ``{"detail", "reason", "dependency"}`` for programs,
    the product's page for browsers; with ``Retry-After`` either way."""
    if request.path_info.startswith(JSON_PREFIXES):
        fields = {"dependency": error.dependency} if error.dependency else {}
        response = api_error(error.http_status, error.message, error.reason or REASON, **fields)
    else:
        # A template of its own that needs no request context: context processors would ask
        # the database (the signed-in user) that may be the very thing that is away.
        page = loader.get_template("503.html").render({"retry_after": error.retry_after})
        response = HttpResponse(page, status=error.http_status)
    response["Retry-After"] = str(error.retry_after)
    response["Cache-Control"] = "no-store"
    # Logged once where it was recognised, not again by Django as a server error.
    response._has_been_logged = True
    return response


class DependencyOutageMiddleware:
    """Answers a plain Django view's outage error with 503 (DRF views answer in the
    exception handler)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        found = unavailable_for(exception, path=request.path)
        return None if found is None else unavailable_response(request, found)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: what Django answers for an exception nothing else caught. An outage raised
    outside a view (a middleware reading or saving the session) is still a 503 here; anything
    else is the product's 500 page (JSON under /api/, see ApiErrorMiddleware)."""
    error = sys.exc_info()[1]
    found = unavailable_for(error, path=request.path) if error is not None else None
    if found is not None:
        return unavailable_response(request, found)
    page = loader.get_template("500.html").render()
    return HttpResponse(page, status=HTTPStatus.INTERNAL_SERVER_ERROR)


# RFC 6455's registered close code "Try Again Later".
CLOSE_TRY_AGAIN_LATER = 1013


class WebsocketOutageGuard:
    """ASGI middleware for websockets: a handshake or consumer that meets a dependency that is
    away closes the socket with 1013 (Try Again Later) instead of failing the handshake with a
    500 (browsers see the close code, not the status). On reconnect the consumer sends the
    current status first, so nothing is missed for good."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        state = {"accepted": False, "closed": False}

        async def tracking_send(message) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] == "websocket.close":
                state["closed"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            dependency = outage_of(error)
            if dependency is None or state["closed"]:
                raise
            outage_recorded(dependency, error, action="refused", path=scope.get("path", ""))
            if not state["accepted"]:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
