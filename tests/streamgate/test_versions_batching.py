"""The edge's version reads: reads that arrive before a query is sent share it, and a read never
gets an answer older than its own arrival (streamgate/versions.py, ``AsyncVersions``).

The reads run against the test database through the real class; a subclass only counts the
queries it sends."""

import asyncio

import psycopg
import pytest
from django.db import connection

from streamgate.versions import AUTH, PUBLIC, SEQUENCE, TABLE, AsyncVersions, owner_scope

pytestmark = pytest.mark.django_db(transaction=True)


class CountingVersions(AsyncVersions):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[list[str]] = []

    async def _query(self, state, scopes):
        self.queries.append(scopes)
        return await super()._query(state, scopes)


def bump(scope: str) -> int:
    """Move ``scope`` as a committed write would, from another connection; its new number."""
    with psycopg.connect(**AsyncVersions()._conninfo(), autocommit=True) as other:
        row = other.execute(
            f"INSERT INTO {TABLE} (scope, version) VALUES (%s, nextval('{SEQUENCE}')) "  # noqa: S608
            "ON CONFLICT (scope) DO UPDATE SET version = EXCLUDED.version RETURNING version",
            [scope],
        ).fetchone()
    return row[0]


def current(scope: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {TABLE} WHERE scope = %s", [scope])  # noqa: S608
        return cursor.fetchone()[0]


async def test_reads_of_one_turn_share_one_query_and_each_gets_its_scopes():
    versions = CountingVersions()
    owner = owner_scope(424242)
    await asyncio.to_thread(bump, owner)
    asked = [[PUBLIC], [AUTH, PUBLIC], [AUTH, owner], [PUBLIC]] * 10
    answers = await asyncio.gather(*(versions.read(scopes) for scopes in asked))
    assert len(versions.queries) == 1
    assert sorted(versions.queries[0]) == sorted({AUTH, PUBLIC, owner})
    for scopes, answer in zip(asked, answers, strict=True):
        assert set(answer) == set(scopes)
    expected = {s: await asyncio.to_thread(current, s) for s in (AUTH, PUBLIC, owner)}
    assert all(answer[s] == expected[s] for answer in answers for s in answer)


async def test_a_read_after_a_commit_sees_it_even_with_a_query_in_flight():
    versions = CountingVersions()
    await versions.read([PUBLIC])  # a connection is open, as under load
    early = asyncio.ensure_future(versions.read([PUBLIC]))
    while not versions.queries[1:]:  # the early read's query is on its way
        await asyncio.sleep(0)
    moved = await asyncio.to_thread(bump, PUBLIC)
    late = await versions.read([PUBLIC])
    assert late[PUBLIC] == moved
    await early
    assert len(versions.queries) == 3  # the late read did not join the query sent before it


async def test_reads_waiting_for_a_busy_connection_join_the_next_query():
    versions = CountingVersions()
    versions.CONNECTIONS = 1
    first = asyncio.ensure_future(versions.read([PUBLIC]))
    while not versions.queries:
        await asyncio.sleep(0)
    # The only connection is busy: everything asked now waits for it, as one query.
    waiting = [asyncio.ensure_future(versions.read([AUTH])) for _ in range(20)]
    await asyncio.gather(first, *waiting)
    assert len(versions.queries) == 2
