"""Every model whose rows appear in a cached answer, written through every path that can write
it, then read again: never a stale answer, never one for a revoked token or a deactivated user.

Cached answers are the edge's replays (streamgate/edge.py) and Django's page cache
(apps/content/cache.py); both are read here, each after proving that the first read was kept
(a second identical read is answered from the cache), so no case passes for want of caching.
Write paths: the service where one exists, the admin (its change form as rendered, or its
action), a bulk ``QuerySet.update``/``delete`` (what a data migration's RunPython does), and
a raw SQL statement (a RunSQL migration, a fix typed into psql).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from apps.access.models import ApiToken
from apps.access.services import api_token_create, api_token_revoke
from apps.chain.models import ChainContract, Pin, Registration
from apps.content.models import Content, ContentStatus, Rendition
from apps.content.services import content_progress_set, content_update
from streamgate.edge import EdgeCache
from streamgate.streaming import StreamingBodyASGIHandler
from tests.factories import ContentFactory, CreatorFactory, RenditionFactory, UserFactory
from tests.support.admin_forms import admin_action, admin_change
from tests.support.edge_client import asgi_get, edge_hits

pytestmark = pytest.mark.django_db(transaction=True)

REGISTRY = "0x5FbDB2315678afecb367f642d0D0f4F57B1c9EF1"
NEW_ADDRESS = "0x" + "a" * 40


@pytest.fixture(autouse=True)
def _empty_caches():
    cache.delete_pattern("content:api*")
    cache.delete_pattern("edge:*")


@pytest.fixture
def edge(settings):
    settings.EDGE_CACHE = True
    return EdgeCache(StreamingBodyASGIHandler())


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@dataclass
class World:
    """What a case reads and writes: a ready content with a rendition, a registration and a
    pin; a draft of the same creator; the creator's bearer token."""

    ready: Content
    draft: Content
    rendition: Rendition
    registration: Registration
    pin: Pin
    contract: ChainContract
    token: ApiToken
    clear: str


@pytest.fixture
def world() -> World:
    creator = CreatorFactory()
    ready = ContentFactory(owner=creator, title="Before", status=ContentStatus.READY)
    draft = ContentFactory(owner=creator, title="Draft", status=ContentStatus.UPLOADING)
    contract = ChainContract.objects.create(chain="eip155:31337", kind="registry", address=REGISTRY)
    registration = Registration.objects.create(
        content=ready, chain=contract.chain, contract=contract, status="submitted", tx_hash="0x01"
    )
    pin = Pin.objects.create(content=ready, cid="bafy-before", status="pinning")
    token, clear = api_token_create(user=creator)
    return World(
        ready=ready,
        draft=draft,
        rendition=RenditionFactory(content=ready, bitrate=1_000_000),
        registration=registration,
        pin=pin,
        contract=contract,
        token=token,
        clear=clear,
    )


# ---- readers: the edge (ASGI stack) and Django alone (its page cache) --------------------------


def read_edge(edge, path: str, token: str | None) -> tuple[int, dict | None, bool]:
    """(status, JSON, whether the edge replayed it)."""
    before = edge_hits()
    answer = asgi_get(edge, path, token)
    body = answer["body"]
    return answer["status"], (json.loads(body) if body else None), edge_hits() == before + 1


def read_django(edge, path: str, token: str | None) -> tuple[int, dict | None, bool]:
    """(status, JSON, whether Django's page cache answered it: no content query)."""
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    seen: list[str] = []

    def note(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(note):
        answer = client.get(path)
    from_cache = not any('FROM "content_content"' in sql for sql in seen)
    return answer.status_code, answer.json() if answer.content else None, from_cache


READERS = {"edge": read_edge, "django": read_django}


# ---- cases: what is read, how it is written, what must be read after ----------------------------


@dataclass
class Case:
    path: Callable[[World], str]
    token: Callable[[World], str | None]
    shows: Callable[[dict | None, int], object]  # what the read shows (JSON, status)
    writes: dict[str, Callable[..., None]]  # path name -> write(world, admin_client)
    expect: object  # what the read must show after any of the writes


def raw(sql: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))


def detail(w: World) -> str:
    return f"/api/v1/contents/{w.ready.id}/"


def anonymous(w: World) -> None:
    return None


def creators(w: World) -> str:
    return w.clear


CASES: dict[str, Case] = {
    "content title": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: body["title"],
        writes={
            "service": lambda w, a: content_update(content=w.ready, title="After"),
            "admin": lambda w, a: admin_change(
                a, f"/admin/content/content/{w.ready.id}/change/", {"title": "After"}
            ),
            "bulk": lambda w, a: Content.objects.filter(pk=w.ready.pk).update(title="After"),
            "raw": lambda w, a: raw(
                "UPDATE content_content SET title = %s WHERE id = %s", "After", w.ready.id
            ),
        },
        expect="After",
    ),
    "content deleted": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: status,
        writes={
            "bulk": lambda w, a: Content.objects.filter(pk=w.ready.pk).delete(),
            "raw": lambda w, a: (
                raw("DELETE FROM chain_registration WHERE content_id = %s", w.ready.id),
                raw("DELETE FROM chain_pin WHERE content_id = %s", w.ready.id),
                raw("DELETE FROM content_rendition WHERE content_id = %s", w.ready.id),
                raw("DELETE FROM content_content WHERE id = %s", w.ready.id),
            ),
        },
        expect=404,
    ),
    "draft progress (its owner's page)": Case(
        path=lambda w: "/api/v1/contents/?owner=me",
        token=creators,
        shows=lambda body, status: {c["title"]: c["progress"] for c in body["results"]}["Draft"],
        writes={
            "service": lambda w, a: content_progress_set(content_id=w.draft.id, progress=42),
            "bulk": lambda w, a: Content.objects.filter(pk=w.draft.pk).update(progress=42),
            "raw": lambda w, a: raw(
                "UPDATE content_content SET progress = 42 WHERE id = %s", w.draft.id
            ),
        },
        expect=42,
    ),
    "rendition": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: [r["bitrate"] for r in body["renditions"]],
        writes={
            "bulk": lambda w, a: Rendition.objects.filter(pk=w.rendition.pk).update(bitrate=7),
            "raw": lambda w, a: raw(
                "UPDATE content_rendition SET bitrate = 7 WHERE id = %s", w.rendition.pk
            ),
        },
        expect=[7],
    ),
    "rendition deleted": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: [r["bitrate"] for r in body["renditions"]],
        writes={
            "bulk": lambda w, a: Rendition.objects.filter(pk=w.rendition.pk).delete(),
            "raw": lambda w, a: raw("DELETE FROM content_rendition WHERE id = %s", w.rendition.pk),
        },
        expect=[],
    ),
    "owner's name": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: body["owner"],
        writes={
            "admin": lambda w, a: admin_change(
                a, f"/admin/auth/user/{w.ready.owner_id}/change/", {"username": "renamed"}
            ),
            "bulk": lambda w, a: (
                type(w.ready.owner).objects.filter(pk=w.ready.owner_id).update(username="renamed")
            ),
            "raw": lambda w, a: raw(
                "UPDATE auth_user SET username = 'renamed' WHERE id = %s", w.ready.owner_id
            ),
        },
        expect="renamed",
    ),
    "registration": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: body["onchain"]["tx_hash"],
        writes={
            "bulk": lambda w, a: Registration.objects.filter(pk=w.registration.pk).update(
                tx_hash="0x02"
            ),
            "raw": lambda w, a: raw(
                "UPDATE chain_registration SET tx_hash = '0x02' WHERE id = %s", w.registration.pk
            ),
        },
        expect="0x02",
    ),
    "registry contract": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: body["onchain"]["contract"],
        writes={
            "admin": lambda w, a: admin_change(
                a,
                f"/admin/chain/chaincontract/{w.contract.pk}/change/",
                {"address": "0x" + "a" * 40},
            ),
            "bulk": lambda w, a: ChainContract.objects.filter(pk=w.contract.pk).update(
                address=NEW_ADDRESS
            ),
            "raw": lambda w, a: raw(
                "UPDATE chain_chaincontract SET address = %s WHERE id = %s",
                NEW_ADDRESS,
                w.contract.pk,
            ),
        },
        expect=NEW_ADDRESS,
    ),
    "pin": Case(
        path=detail,
        token=anonymous,
        shows=lambda body, status: body["ipfs"]["status"],
        writes={
            "bulk": lambda w, a: Pin.objects.filter(pk=w.pin.pk).update(status="pinned"),
            "raw": lambda w, a: raw(
                "UPDATE chain_pin SET status = 'pinned' WHERE id = %s", w.pin.pk
            ),
        },
        expect="pinned",
    ),
    "token revoked": Case(
        path=detail,
        token=creators,
        shows=lambda body, status: status,
        writes={
            "service": lambda w, a: api_token_revoke(token=w.token),
            "admin": lambda w, a: admin_action(
                a, "/admin/access/apitoken/", "revoke", [w.token.pk]
            ),
            "bulk": lambda w, a: ApiToken.objects.filter(pk=w.token.pk).update(
                revoked_at="2026-01-01T00:00:00Z"
            ),
            "raw": lambda w, a: raw(
                "UPDATE access_apitoken SET revoked_at = now() WHERE id = %s", w.token.pk
            ),
            "bulk delete": lambda w, a: ApiToken.objects.filter(pk=w.token.pk).delete(),
        },
        expect=401,
    ),
    "user deactivated": Case(
        path=detail,
        token=creators,
        shows=lambda body, status: status,
        writes={
            "admin": lambda w, a: admin_change(
                a, f"/admin/auth/user/{w.ready.owner_id}/change/", {"is_active": None}
            ),
            "bulk": lambda w, a: (
                type(w.ready.owner).objects.filter(pk=w.ready.owner_id).update(is_active=False)
            ),
            "raw": lambda w, a: raw(
                "UPDATE auth_user SET is_active = false WHERE id = %s", w.ready.owner_id
            ),
        },
        expect=401,
    ),
}

MATRIX = [
    pytest.param(case, write, reader, id=f"{case}-{write}-{reader}")
    for case, spec in CASES.items()
    for write in spec.writes
    for reader in READERS
]


@pytest.mark.parametrize(("case", "write", "reader"), MATRIX)
def test_no_write_leaves_a_cached_answer_stale(edge, admin_client, world, case, write, reader):
    spec, read = CASES[case], READERS[reader]
    path, token = spec.path(world), spec.token(world)
    status, body, _ = read(edge, path, token)
    assert status == 200, body
    before = spec.shows(body, status)
    assert before != spec.expect
    status, body, cached = read(edge, path, token)
    assert cached, "the second read should have come from the cache"
    assert spec.shows(body, status) == before

    spec.writes[write](world, admin_client)

    status, body, _ = read(edge, path, token)
    assert spec.shows(body, status) == spec.expect
