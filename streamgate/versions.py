"""Cache versions kept by PostgreSQL itself, so that no write can leave a cached answer stale.

A cached answer (the content API's pages in Django's cache, the edge's whole responses) is
stored with the version numbers of the scopes it depends on, read before its query, and used
only while they stand. The numbers live in one table, ``streamgate_cache_version``, and are
moved by triggers on the tables whose rows appear in cached answers: a service, the admin, a
bulk ``update()``, a data migration or a hand-typed ``UPDATE`` in psql all move them, in the
transaction that made the change, visible exactly when it commits. Nothing in Python has to
remember to invalidate (the previous design, signals plus overridden QuerySet methods, missed
bulk user updates and any raw SQL).

Scopes:

- ``public``: what anyone may see (ready contents, their renditions, registrations, pins,
  contracts, their owners' names). Every cached answer depends on it.
- ``owner:<id>``: an unpublished content of that user (its progress moves several times a
  second during an upload); only their own pages depend on it. (Staff, who see every
  unpublished content, get no cached pages: a scope every upload's progress moved would be one
  row that all uploads' commits queue on.)
- ``auth``: who may do what (tokens revoked, expired differently or deleted; users changed);
  the edge replays nothing stored before its last move.

How the triggers stay cheap and deadlock-free: a row trigger only notes the scopes a change
touches in a transaction-local setting; a deferred constraint trigger bumps them all at commit,
in sorted order, each to the next value of one sequence. Two committing transactions therefore
lock version rows in the same order and never wait on each other in a cycle, and a row is
locked only for the instant of its commit. Values come from a sequence (not +1) so that a number
never returns: a TRUNCATE of a watched table (the test suite's flush) bumps every scope, and a
scope that is created again gets a fresh value.

Written by hand: django-pgtrigger could declare these triggers (deferred ones too), but not
the PL/pgSQL they call (noting scopes, bumping them sorted at commit), which is most of this;
the few lines of DDL live in ``streamgate/version_triggers.py`` and the apps' migrations
rather than in a dependency. ``Remembered`` (rows a process keeps between requests) is ours
too: django-cachalot caches ORM results but forgets them only on writes made through the ORM,
not on raw SQL (a data migration, an ``UPDATE`` typed into psql); the versions see every write.

PostgreSQL only: on SQLite (the embedded, single-machine setup) nothing is cached and these
functions answer None.
"""

import asyncio
import contextlib
import copy
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from streamgate.breaker import Breaker

logger = logging.getLogger(__name__)

TABLE = "streamgate_cache_version"
SEQUENCE = "streamgate_cache_version_seq"
PUBLIC = "public"
AUTH = "auth"
# How long a cached answer is kept at most: the content API's page cache and the edge's entries.
PAGE_TTL = 60
_READ = f"SELECT scope, version FROM {TABLE} WHERE scope = ANY(%s)"  # noqa: S608


def owner_scope(owner_id: int) -> str:
    return f"owner:{owner_id}"


def versions_enabled(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database keeps cache versions (PostgreSQL does)."""
    return connections[alias].vendor == "postgresql"


def _found(rows: Iterable[tuple[str, int]], scopes: list[str]) -> dict[str, int]:
    """Versions by scope; 0 for a scope never bumped (an owner with no unpublished content
    yet). Rows are never deleted, so 0 never comes back once a scope has a number."""
    found = dict(rows)
    return {scope: found.get(scope, 0) for scope in scopes}


def versions_read(scopes: list[str]) -> dict[str, int] | None:
    """The current versions of ``scopes`` in one query; None when they cannot be known
    (SQLite, or the database failed: the caller then caches nothing)."""
    if not versions_enabled():
        return None
    try:
        return _versions_now(scopes)
    except DatabaseError as error:
        logger.warning("cache versions unavailable", extra={"error": repr(error)})
        return None


def _versions_now(scopes: list[str]) -> dict[str, int]:
    """The read itself, on Django's connection; a database error is raised."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_READ, [scopes])
        return _found(cursor.fetchall(), scopes)


T = TypeVar("T")


def _copied(value: Any) -> Any:
    return copy.copy(value)


class Remembered:
    """Rows read through the ORM, kept by this process while the cache versions read before
    loading them stand; every caller gets its own copy. For lookups nearly every request makes
    (a bearer token, the content being played), whose SQL costs more to build than to run: one
    version query replaces each, and no write can leave them stale, since the triggers move the
    versions in the writing transaction. Nothing is kept without PostgreSQL, nor a missing row.

    A database error reading the versions is raised (the request answers 503 as it would have),
    not retried as a plain load, which would double the wait on a database that hangs."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, tuple[dict[str, int], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        key: Hashable,
        scopes: list[str],
        load: Callable[[], T | None],
        clone: Callable[[T], T] = _copied,
    ) -> T | None:
        if not versions_enabled():
            return load()
        now = _versions_now(scopes)
        with self._lock:
            kept = self._values.get(key)
            if kept is not None and kept[0] == now:
                self._values.move_to_end(key)
                return clone(kept[1])
        value = load()
        if value is None:
            return None
        with self._lock:
            self._values[key] = (now, value)
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return clone(value)

    def update(self, key: Hashable, change: Callable[[Any], None]) -> None:
        """Apply ``change`` to the kept row, if any (a write that moves no version, such as a
        token's last use, made by the process that keeps it)."""
        with self._lock:
            kept = self._values.get(key)
            if kept is not None:
                change(kept[1])

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class VersionsUnavailable(Exception):
    """The edge could not read the versions in time."""


def _retrieved(task: asyncio.Task) -> None:
    """An abandoned read's outcome, taken so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


class _LoopConnections:
    """One event loop's connections: at most ``size`` open, idle ones reused; the read being
    formed (not sent yet); and when a query was last answered."""

    def __init__(self, size: int) -> None:
        self.slots = asyncio.Semaphore(size)
        self.idle: list[psycopg.AsyncConnection] = []
        self.forming: _Batch | None = None
        self.answered_at = 0.0


class _Batch:
    """Reads that joined before one query was sent: it answers them all. ``started`` resolves
    to the query's task once a connection is free and the query is on its way."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scopes: set[str] = set()
        self.sent = False
        self.started: asyncio.Future[asyncio.Task] = loop.create_future()
        self.started.add_done_callback(_retrieved)


class AsyncVersions:
    """The same read for the edge, on asyncio connections of its own, so a replay never takes
    a Django thread. A few connections per event loop, kept open (a query takes a fraction of
    a millisecond; opening a connection, a PostgreSQL process, takes several); reads beyond
    them wait for one. Not psycopg_pool's AsyncConnectionPool, whose background tasks belong to
    one loop and keep a loop that ends (each ``async_to_sync`` call in tests) from closing.

    Reads that arrive while a query has not been sent yet (in the same turn of the event loop,
    or while every connection is busy) join it: one query answers them all. Each read's answer
    still comes from a query sent after it arrived, so it sees every commit made before it
    asked; under load, one query serves many replays instead of each paying its own."""

    # The read answers within milliseconds, even under load; half a second leaves Django its
    # own bound (DATABASE_WAIT_SECONDS) for the 503 within the time a client is promised.
    QUERY_TIMEOUT = 0.5
    QUEUE_TIMEOUT = 2.0  # waiting for a free connection, or for a late answer under load
    CONNECTIONS = 8  # per web process

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._breaker: Breaker | None = None

    @property
    def breaker(self) -> Breaker:
        """Fails reads at once for a second after one failed (a paused server would otherwise
        cost every request the timeout before Django answers its own 503)."""
        if self._breaker is None:
            conninfo = self._conninfo()
            server = f"{conninfo.get('host', 'localhost')}:{conninfo.get('port', 5432)}"
            self._breaker = Breaker(server, kind="postgresql")
        return self._breaker

    def _conninfo(self) -> dict:
        database = connections[DEFAULT_DB_ALIAS].settings_dict
        params = {
            "dbname": database["NAME"],
            "user": database.get("USER") or None,
            "password": database.get("PASSWORD") or None,
            "host": database.get("HOST") or None,
            "port": database.get("PORT") or None,
            "connect_timeout": database.get("OPTIONS", {}).get("connect_timeout", 5),
        }
        return {key: value for key, value in params.items() if value is not None}

    async def read(self, scopes: list[str]) -> dict[str, int]:
        """As ``versions_read``; raises ``VersionsUnavailable`` when the database fails or does
        not answer in time (the edge then passes the request to Django)."""
        if not self.breaker.allow():
            raise VersionsUnavailable("the database failed moments ago")
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopConnections(self.CONNECTIONS)
        batch = state.forming
        if batch is None or batch.sent:
            batch = state.forming = _Batch(loop)
            asyncio.ensure_future(self._send(state, batch))
        batch.scopes.update(scopes)
        try:  # every connection busy: this process is loaded, the database is not at fault
            task = await asyncio.wait_for(asyncio.shield(batch.started), self.QUEUE_TIMEOUT)
        except TimeoutError:
            raise VersionsUnavailable("every connection is busy") from None
        # Not wait_for: cancelling a query makes psycopg ask the server to cancel it, which a
        # paused server never answers; a read given up on is left to end (or fail) by itself.
        await asyncio.wait({task}, timeout=self.QUERY_TIMEOUT)
        if not task.done() and loop.time() - state.answered_at < 1.0:
            # Others were answered a moment ago: this process is slow (a saturated event loop
            # runs every callback late), not the database. Falling back to Django, ten times
            # dearer, would only slow it further; wait a little longer instead.
            await asyncio.wait({task}, timeout=self.QUEUE_TIMEOUT)
        if not task.done():
            error = VersionsUnavailable(f"no answer within {self.QUERY_TIMEOUT:g} s")
            self.breaker.failed(error)
            raise error
        try:
            found = task.result()
        except Exception as error:
            self.breaker.failed(error)
            raise
        state.answered_at = loop.time()
        self.breaker.answered()
        return {scope: found[scope] for scope in scopes}

    async def _send(self, state: _LoopConnections, batch: _Batch) -> None:
        """Send ``batch``'s query once a connection is free, after the reads of this turn of
        the event loop have joined it."""
        try:
            await asyncio.sleep(0)
            await asyncio.wait_for(state.slots.acquire(), self.QUEUE_TIMEOUT)
        except TimeoutError:
            batch.sent = True  # closed: later reads form a new one
            batch.started.set_exception(VersionsUnavailable("every connection is busy"))
            return
        batch.sent = True
        if state.forming is batch:
            state.forming = None
        task = asyncio.ensure_future(self._query(state, sorted(batch.scopes)))
        task.add_done_callback(_retrieved)
        batch.started.set_result(task)

    async def _query(self, state: _LoopConnections, scopes: list[str]) -> dict[str, int]:
        try:
            connection = state.idle.pop() if state.idle else None
            if connection is None or connection.closed:
                connection = await psycopg.AsyncConnection.connect(
                    **self._conninfo(), autocommit=True
                )
            try:
                cursor = await connection.execute(_READ, [scopes], prepare=True)
                rows = await cursor.fetchall()
            except BaseException:  # failed mid-query: the connection is not reused
                with contextlib.suppress(Exception):
                    await connection.close()
                raise
            state.idle.append(connection)
        finally:
            state.slots.release()
        return _found(rows, scopes)
