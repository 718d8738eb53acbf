"""A transaction whose client is gone must not hold its locks for ever.

Two faults, both seen in the soak (tests/benchmarks/soak.py): FaultProxy's ``down()`` left the
server's side of an idle connection open (its sockets were closed while its pumping threads sat
in ``recv``, which on Linux neither wakes them nor closes anything), so a transaction that was
open when "PostgreSQL died" lived on in the server, holding a lock on a creator's row: every
upload that creator started afterwards answered 503, and a finalisation waited on it for ever.
A real server that dies takes its sessions with it; the proxy now does too.

The real-world form of that orphan remains: the network between the stack and PostgreSQL drops
the stack's side of a connection (a firewall or load balancer that forgets its flows, a client
host that vanishes) and the server never hears of it. The server then ends such a session after
``idle_in_transaction_session_timeout`` (streamgate/settings/environment.py), and its locks
with it.
"""

import time

import psycopg
import pytest
from django.conf import settings
from django.db.utils import ConnectionHandler

from streamgate.settings.environment import database_config
from tests.streamgate.test_database import admin_url
from tests.support.faults import fault_proxy

LOCK_KEY = 23_0023


def backend_state(pid: int) -> str | None:
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        row = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row[0] if row else None


def lock_free_within(seconds: float, key: int) -> float | None:
    """How long until a direct connection can take the advisory lock ``key``; None: never
    within ``seconds``."""
    start = time.monotonic()
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        while time.monotonic() - start < seconds:
            if admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                admin.execute("SELECT pg_advisory_unlock(%s)", (key,))
                return time.monotonic() - start
            time.sleep(0.2)
    return None


@pytest.fixture
def postgres_port() -> int:
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs PostgreSQL")
    return int(settings.DATABASES["default"]["PORT"] or 5432)


def test_a_service_that_goes_down_takes_its_sessions_with_it(postgres_port):
    key = LOCK_KEY + 1
    with fault_proxy(postgres_port) as proxy:
        client = psycopg.connect(f"postgresql://root@127.0.0.1:{proxy.port}/postgres")
        client.execute("SELECT pg_advisory_xact_lock(%s)", (key,))  # a transaction holds it
        backend = client.info.backend_pid
        assert backend_state(backend) == "idle in transaction"
        proxy.down()
        # The client learns at once, as it would from a server that died...
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 1")
        client.close()
        # ...and the server's session is gone, its lock released, without waiting for up().
        assert lock_free_within(5, key) is not None
        assert backend_state(backend) is None
        proxy.up()
        with psycopg.connect(f"postgresql://root@127.0.0.1:{proxy.port}/postgres") as again:
            assert again.execute("SELECT 1").fetchone() == (1,)


def test_a_transaction_whose_client_vanished_gives_its_locks_back(postgres_port):
    key = LOCK_KEY + 2
    with fault_proxy(postgres_port) as proxy:
        config = database_config(
            f"postgres://root@127.0.0.1:{proxy.port}/postgres",
            conn_max_age=60,  # one plain connection, made as the stack makes them
            idle_in_transaction_seconds=2,
        )
        wrapper = ConnectionHandler({"default": config})["default"]  # with Django's defaults
        client = wrapper.get_new_connection(wrapper.get_connection_params())
        client.execute("SELECT pg_advisory_xact_lock(%s)", (key,))  # a transaction holds it
        backend = client.info.backend_pid
        proxy.sever()  # the stack's side is reset; PostgreSQL hears nothing
        assert backend_state(backend) == "idle in transaction"
        waited = lock_free_within(15, key)
        assert waited is not None, "the orphaned transaction still holds its lock"
        assert waited < 6
        assert backend_state(backend) is None
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 1")
        client.close()


@pytest.mark.django_db
def test_the_stack_bounds_idle_transactions(postgres_port):
    """The configured sessions carry the bound (DATABASE_IDLE_IN_TRANSACTION_SECONDS)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
        )
        milliseconds = int(cursor.fetchone()[0])
    assert milliseconds == settings.DATABASE_IDLE_IN_TRANSACTION_SECONDS * 1000 > 0
