"""Rows a process remembers between requests (streamgate/versions.py, ``Remembered``): the
bearer token and the content being played. A repeat costs one version query instead of the ORM
query, and every write that changes the answer, by any path, is seen by the next request."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.access.models import ApiToken
from apps.access.selectors import api_token_authenticate
from apps.access.services import api_token_create, api_token_touch
from apps.content.models import Content, ContentStatus
from apps.content.selectors import content_visible_get
from tests.access.conftest import published
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME_URL = "/api/v1/contents/?owner=me"


def bearer(clear: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


def raw(sql: str, params: list) -> None:
    """A write no Python code sees: as a data migration or psql would make it."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_remembered_token_costs_one_version_query(django_assert_num_queries):
    token, clear = api_token_create(user=UserFactory())
    assert api_token_authenticate(clear).pk == token.pk  # read, then remembered
    with django_assert_num_queries(1):
        again = api_token_authenticate(clear)
    assert again.pk == token.pk
    assert again.user.pk == token.user.pk


@pytest.mark.parametrize(
    "write",
    [
        "UPDATE access_apitoken SET revoked_at = now() WHERE id = %(token)s",
        "DELETE FROM access_apitoken WHERE id = %(token)s",
        "UPDATE access_apitoken SET expires_at = now() - interval '1 second' WHERE id = %(token)s",
        "UPDATE auth_user SET is_active = false WHERE id = %(user)s",
    ],
    ids=["revoked", "deleted", "expired", "user deactivated"],
)
def test_a_remembered_token_is_refused_at_once_after_any_write(write):
    user = UserFactory()
    token, clear = api_token_create(user=user)
    assert bearer(clear).get(ME_URL).status_code == 200
    assert bearer(clear).get(ME_URL).status_code == 200  # from memory
    with connection.cursor() as cursor:
        cursor.execute(write, {"token": token.pk, "user": user.pk})
    assert bearer(clear).get(ME_URL).status_code == 401


def test_expiry_is_judged_at_every_request(time_machine):
    _, clear = api_token_create(
        user=UserFactory(), expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert api_token_authenticate(clear) is not None
    time_machine.move_to(timezone.now() + timedelta(seconds=31))
    assert api_token_authenticate(clear) is None


def test_a_callers_changes_to_its_copy_stay_its_own():
    _, clear = api_token_create(user=UserFactory(first_name="Ada"))
    first = api_token_authenticate(clear)
    first.user.first_name = "changed in one request"
    first.name = "changed too"
    second = api_token_authenticate(clear)
    assert second.user.first_name == "Ada"
    assert second.name == ""
    assert second is not first
    assert second.user is not first.user


def test_recording_a_use_writes_once_a_minute_with_the_row_remembered(
    time_machine, django_assert_num_queries
):
    token, clear = api_token_create(user=UserFactory())
    api_token_touch(token=api_token_authenticate(clear))  # never used: written
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    with django_assert_num_queries(1):  # the version query; no write within the minute
        api_token_touch(token=api_token_authenticate(clear))
    time_machine.move_to(timezone.now() + timedelta(seconds=61))
    with django_assert_num_queries(2):  # a minute on: written once more
        api_token_touch(token=api_token_authenticate(clear))
    with django_assert_num_queries(1):
        api_token_touch(token=api_token_authenticate(clear))


def test_the_played_content_is_remembered_and_every_change_shows(
    media_root, django_assert_num_queries
):
    viewer = UserFactory()
    content = published(media_root).content
    assert content_visible_get(viewer, content.id).pk == content.pk
    with django_assert_num_queries(1):
        assert content_visible_get(viewer, content.id).status == ContentStatus.READY

    raw("UPDATE content_content SET gate = %s WHERE id = %s", ['{"allowlist": ["x"]}', content.id])
    assert content_visible_get(viewer, content.id).gate is not None
    Content.objects.filter(pk=content.pk).update(status=ContentStatus.PROCESSING)
    assert content_visible_get(viewer, content.id) is None  # no longer visible to a viewer
    assert content_visible_get(content.owner, content.id).status == ContentStatus.PROCESSING


def test_playback_follows_a_content_withdrawn_after_it_was_played(media_root):
    viewer = UserFactory()
    content = published(media_root).content
    _, clear = api_token_create(user=viewer)
    url = f"/api/v1/contents/{content.id}/playback/"
    assert bearer(clear).post(url).status_code == 200
    assert bearer(clear).post(url).status_code == 200
    raw("UPDATE content_content SET status = 'processing' WHERE id = %s", [content.id])
    assert bearer(clear).post(url).status_code == 404
