"""The one boundary (streamgate/outages.py): the errors real clients raise when their service is
away are recognised, and nothing else is; the Redis breaker makes a paused Redis cost one
timeout, not one per call; the cache's users degrade instead of failing."""

import errno
import sqlite3
import time

import psycopg
import pytest
import redis
from django.core.cache import caches
from kombu import Connection

from apps.access.gates import Condition, Wallet
from apps.access.ownership.cache import answers_cached
from streamgate.breaker import COOLDOWN_SECONDS, CircuitOpen
from streamgate.outages import outage_of
from streamgate.settings.environment import cache_config
from tests.streamgate.test_database import admin_url
from tests.support.faults import fault_proxy
from tests.support.processes import free_port, redis_server


def raised(call) -> BaseException:
    try:
        call()
    except BaseException as error:  # what it raised is the point
        return error
    raise AssertionError("no error raised")


def test_errors_of_absent_services_are_recognised():
    closed = free_port()
    database = raised(
        lambda: psycopg.connect(f"postgresql://root@127.0.0.1:{closed}/x", connect_timeout=2)
    )
    assert outage_of(database) == "database"
    cache = raised(lambda: redis.Redis(port=closed, socket_connect_timeout=1).get("k"))
    assert outage_of(cache) == "cache"
    broker = raised(
        lambda: Connection(f"redis://127.0.0.1:{closed}/0").ensure_connection(max_retries=1)
    )
    assert outage_of(broker) == "broker"
    for number in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        assert outage_of(OSError(number, "disk")) == "storage"


@pytest.mark.django_db
def test_a_database_shutting_down_is_an_outage():
    from django.db import connection

    with connection.cursor() as cursor:  # the server says so, SQLSTATE 57P01
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    gone = raised(lambda: connection.cursor().execute("SELECT 1"))
    assert outage_of(gone) == "database"


def test_other_errors_stay_bugs(tmp_path):
    unmigrated = sqlite3.connect(tmp_path / "db.sqlite3")
    assert outage_of(raised(lambda: unmigrated.execute("SELECT * FROM content"))) is None
    assert outage_of(psycopg.errors.UndefinedTable("no such relation")) is None
    assert outage_of(ValueError("bad")) is None
    assert outage_of(OSError(errno.ENOENT, "missing")) is None
    assert outage_of(OSError(errno.EACCES, "denied")) is None
    assert outage_of(redis.ResponseError("WRONGTYPE")) is None
    assert outage_of(psycopg.errors.UniqueViolation("dup")) is None


def test_an_error_raised_from_an_outage_is_one():
    def store() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("storing failed") from error

    assert outage_of(raised(store)) == "storage"


def redis_cache(settings, port: int):
    """Django's cache as production configures it, on the Redis at ``port``."""
    settings.CACHES = cache_config(f"redis://127.0.0.1:{port}/0", folder=None)
    return caches["default"]


def timed(call) -> tuple[object, float]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as error:
        result = error
    return result, time.monotonic() - started


def test_a_paused_redis_costs_one_timeout_then_calls_fail_at_once(settings, logs_dir):
    with redis_server(logs_dir / "redis.log") as port, fault_proxy(port) as proxy:
        cache = redis_cache(settings, proxy.port)
        cache.set("k", "v")
        proxy.pause()
        try:
            first, seconds = timed(lambda: cache.get("k"))
            assert outage_of(first) == "cache"
            assert 1.5 <= seconds <= 3  # its 2 s socket timeout
            # The next 20 calls never touch the socket: all of them together cost less than a
            # quarter of the one timeout (a margin a loaded machine cannot eat, unlike 50 ms each).
            waited = 0.0
            for _ in range(20):
                later, seconds = timed(lambda: cache.get("k"))
                assert outage_of(later) == "cache"
                assert isinstance(later, CircuitOpen)  # django-redis re-raises the cause
                waited += seconds
            assert waited < 0.5
        finally:
            proxy.up()
        deadline = time.monotonic() + COOLDOWN_SECONDS + 3
        while (value := timed(lambda: cache.get("k"))[0]) != "v":
            assert time.monotonic() < deadline, value
            time.sleep(0.05)


@pytest.mark.django_db
def test_ownership_questions_go_to_the_chain_when_the_cache_is_away(settings):
    redis_cache(settings, free_port())  # nothing listens there
    condition = Condition(
        kind="erc721", chain="eip155:1", contract="0x" + "ab" * 20, token_ids=(), min_balance=1
    )
    wallet = Wallet(namespace="eip155", address="0x" + "cd" * 20, chain="")
    answers = answers_cached([condition], [wallet])
    assert answers[condition].held is None  # not known: asked of the chain, never a yes
    assert answers[condition].source == "cache"
