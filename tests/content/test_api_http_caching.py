"""Standard HTTP caching of the content API's reads: an ETag that changes exactly when the
answer may, 304 for an If-None-Match naming it, and Cache-Control that lets a shared cache
(nginx, a CDN) keep the answers that are the same for everyone, revalidating each time."""

import pytest

from apps.content.models import Content, ContentStatus
from tests.factories import ContentFactory, CreatorFactory, StaffFactory

pytestmark = pytest.mark.django_db


def test_an_unchanged_read_is_304_and_any_write_changes_the_tag(api_client):
    content = ContentFactory(title="One", status=ContentStatus.READY)
    detail = f"/api/v1/contents/{content.id}/"
    first = api_client.get(detail)
    etag = first["ETag"]
    assert first["Cache-Control"] == "public, no-cache"
    again = api_client.get(detail, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    Content.objects.filter(pk=content.pk).update(title="Two")  # no service: PostgreSQL sees it
    after = api_client.get(detail, HTTP_IF_NONE_MATCH=etag)
    assert after.status_code == 200
    assert after.json()["title"] == "Two"
    assert after["ETag"] != etag


def test_the_catalog_is_revalidated_the_same_way(api_client):
    ContentFactory(title="One", status=ContentStatus.READY)
    catalog = "/api/v1/contents/?status=ready"
    etag = api_client.get(catalog)["ETag"]
    assert api_client.get(catalog, HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304
    ContentFactory(title="Two", status=ContentStatus.READY)
    assert api_client.get(catalog, HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_callers_own_answers_are_private_and_tagged_for_them_alone(client_for):
    owner, other = CreatorFactory(), CreatorFactory()
    ContentFactory(owner=owner, title="Draft", status=ContentStatus.DRAFT)
    mine = client_for(owner).get("/api/v1/contents/?owner=me")
    assert mine["Cache-Control"] == "private, no-cache"
    assert "Authorization" in mine["Vary"]
    theirs = client_for(other).get("/api/v1/contents/?owner=me", HTTP_IF_NONE_MATCH=mine["ETag"])
    assert theirs.status_code == 200  # another caller's tag never matches
    assert theirs.json()["results"] == []


def test_a_drafts_progress_changes_its_owners_tag(client_for):
    owner = CreatorFactory()
    draft = ContentFactory(owner=owner, status=ContentStatus.UPLOADING)
    api = client_for(owner)
    detail = f"/api/v1/contents/{draft.id}/"
    etag = api.get(detail)["ETag"]
    Content.objects.filter(pk=draft.pk).update(progress=30)
    answer = api.get(detail, HTTP_IF_NONE_MATCH=etag)
    assert answer.status_code == 200
    assert answer.json()["progress"] == 30


def test_answers_that_are_not_cached_carry_no_tag(client_for):
    ContentFactory(title="Draft", status=ContentStatus.DRAFT)
    answer = client_for(StaffFactory()).get("/api/v1/contents/")
    assert "ETag" not in answer
    assert answer["Cache-Control"] == "private, no-cache"
