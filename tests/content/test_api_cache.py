"""The content API's cached pages: served without touching contents again, never across
callers, and stale never: every kind of write makes older pages unreachable."""

import contextlib

import pytest
from django.core.cache import cache

from apps.content.models import Content, ContentStatus, Rendition
from streamgate.versions import PUBLIC, versions_read
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
    with django_assert_num_queries(2):  # the bearer token and the cache versions
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

    Content.objects.filter(pk=content.pk).update(
        progress=42
    )  # no signal, no service: PostgreSQL bumps
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


def test_pages_of_ready_contents_are_shared_by_every_caller(client_for, django_assert_num_queries):
    content = ContentFactory(title="Public", status=ContentStatus.READY)
    ContentFactory(owner=content.owner, title="Draft", status=ContentStatus.DRAFT)
    first, second = client_for(UserFactory()), client_for(UserFactory())
    second.get("/api/v1/contents/?owner=me")  # the token's first use is recorded
    ready, detail = "/api/v1/contents/?status=ready", f"/api/v1/contents/{content.id}/"
    assert [c["title"] for c in first.get(ready).json()["results"]] == ["Public"]
    assert first.get(detail).json()["title"] == "Public"
    # Another caller's page: the token and the versions are read, never a content.
    with django_assert_num_queries(2):
        assert [c["title"] for c in second.get(ready).json()["results"]] == ["Public"]
    with django_assert_num_queries(2):
        assert second.get(detail).json()["title"] == "Public"
    # The owner's own list (drafts included) is theirs alone.
    assert sorted(titles(client_for(content.owner))) == ["Draft", "Public"]


def test_progress_of_a_draft_leaves_other_callers_pages_alone(client_for, api_client):
    from apps.content.services import content_progress_set

    owner = CreatorFactory()
    draft = ContentFactory(owner=owner, title="Draft", status=ContentStatus.PROCESSING)
    mine = client_for(owner)
    detail = f"/api/v1/contents/{draft.id}/"
    assert mine.get(detail).json()["progress"] == 0
    public = versions_read([PUBLIC])
    content_progress_set(content_id=draft.id, progress=55)
    assert versions_read([PUBLIC]) == public  # the public pages stand
    assert mine.get(detail).json()["progress"] == 55
