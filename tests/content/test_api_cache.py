"""The content API's cached pages: served without touching contents again, never across
callers, and stale never: every kind of write makes older pages unreachable."""

import contextlib

import pytest
from django.core.cache import cache

from apps.content.models import Content, ContentStatus, Rendition
from tests.factories import ContentFactory, CreatorFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean():
    cache.delete_pattern("content:api*")
    yield
    with contextlib.suppress(Exception):  # the outage test's cache is still the broken one
        cache.delete_pattern("content:api*")


def titles(client) -> list[str]:
    return [c["title"] for c in client.get("/api/v1/contents/").json()["results"]]


def test_a_repeated_read_is_served_from_the_cache(client_for, django_assert_num_queries):
    creator = CreatorFactory()
    ContentFactory(owner=creator, title="One", status=ContentStatus.READY)
    api = client_for(creator)
    assert titles(api) == ["One"]
    with django_assert_num_queries(1):  # the bearer token only
        assert titles(api) == ["One"]


def test_pages_are_never_shared_between_callers(client_for, api_client):
    owner = CreatorFactory()
    ContentFactory(owner=owner, title="Draft", status=ContentStatus.DRAFT)
    ContentFactory(owner=owner, title="Public", status=ContentStatus.READY)
    assert sorted(titles(client_for(owner))) == ["Draft", "Public"]
    assert titles(client_for(UserFactory())) == ["Public"]
    assert titles(api_client) == ["Public"]


def test_every_kind_of_write_shows_at_once(client_for):
    owner = CreatorFactory()
    content = ContentFactory(owner=owner, title="Before", status=ContentStatus.READY)
    api = client_for(owner)
    detail = f"/api/v1/contents/{content.id}/"
    assert titles(api) == ["Before"]
    assert api.get(detail).json()["title"] == "Before"

    assert api.patch(detail, {"title": "Patched"}, format="json").status_code == 200
    assert titles(api) == ["Patched"]
    assert api.get(detail).json()["title"] == "Patched"

    Content.objects.filter(pk=content.pk).update(progress=42)  # no signal: the QuerySet bumps
    assert api.get(detail).json()["progress"] == 42

    Rendition.objects.bulk_create(
        [Rendition(content=content, name="360p", width=640, height=360, bitrate=1, codecs="x")]
    )
    assert [r["name"] for r in api.get(detail).json()["renditions"]] == ["360p"]

    ContentFactory(owner=owner, title="New", status=ContentStatus.READY)
    assert sorted(titles(api)) == ["New", "Patched"]
    Content.objects.filter(title="New").delete()
    assert titles(api) == ["Patched"]


def test_a_cache_outage_falls_back_to_the_database(client_for, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    owner = CreatorFactory()
    ContentFactory(owner=owner, title="Still here", status=ContentStatus.READY)
    assert titles(client_for(owner)) == ["Still here"]
