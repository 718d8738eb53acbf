"""A web process whose PostgreSQL connection is dropped under it reconnects on the next request
(persistent connections are health-checked), instead of failing every request after."""

import urllib.request
import uuid

import psycopg
import pytest
from django.conf import settings

from tests.support.processes import embedded_env, manage, web_server


def admin_url() -> str:
    db = settings.DATABASES["default"]
    user, host, port = db["USER"] or "root", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgresql://{user}@{host}:{port}/postgres"


@pytest.fixture
def scratch_database():
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs PostgreSQL")
    name = f"sg_dbdrop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_dropped_connection_is_replaced_on_the_next_request(scratch_database, tmp_path, logs_dir):
    database_url = admin_url().rsplit("/", 1)[0] + f"/{scratch_database}"
    env = embedded_env(tmp_path, DATABASE_URL=database_url, DATABASE_CONN_MAX_AGE="600")
    manage(env, "migrate", "--noinput")
    with web_server(env, logs_dir / "web.log") as base:
        assert get(f"{base}/api/v1/contents/") == 200  # opens a connection it keeps
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                (scratch_database,),
            ).fetchone()[0]
        assert dropped >= 1
        assert [get(f"{base}/api/v1/contents/") for _ in range(3)] == [200, 200, 200]
