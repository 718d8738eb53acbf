import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.access.models import ApiToken
from apps.access.selectors import api_token_authenticate
from apps.access.services import api_token_create, api_token_revoke
from apps.access.tokens import token_hash
from apps.content.selectors import user_is_creator
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME_URL = "/api/v1/contents/?owner=me"


def bearer(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def test_token_is_stored_hashed_only(creator):
    token, clear = api_token_create(user=creator, name="ci")
    assert clear.startswith("sg_")
    assert len(clear) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == token_hash(clear)
    assert clear not in {stored.key_hash, stored.prefix, stored.name}
    assert stored.prefix == clear[:10]


def test_valid_token_authenticates_and_records_use(creator):
    token, clear = api_token_create(user=creator)
    response = bearer(f"Bearer {clear}").get(ME_URL)
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert timezone.now() - token.last_used_at < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer sg_not-a-real-token", "Invalid or revoked token."),
        ("Bearer", "Malformed Authorization header: use 'Bearer <token>'."),
        ("Bearer a b", "Malformed Authorization header: use 'Bearer <token>'."),
    ],
)
def test_bad_tokens_are_401_with_a_reason(header, message):
    response = bearer(header).get(ME_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": message, "reason": "authentication_failed"}


def test_token_of_inactive_user_is_refused(creator):
    _, clear = api_token_create(user=creator)
    creator.is_active = False
    creator.save()
    assert bearer(f"Bearer {clear}").get(ME_URL).status_code == 401


def test_other_schemes_are_ignored():
    # Basic auth is not ours: the request is anonymous, which may read public lists.
    assert bearer("Basic dXNlcjpwYXNz").get("/api/v1/contents/").status_code == 200


def test_session_authentication_works(creator):
    client = APIClient()
    # The password throttle (django-axes) counts per client, so authenticate() needs a request.
    assert client.login(request=HttpRequest(), username=creator.username, password="pass-word-123")
    response = client.post("/api/v1/contents/", {"title": "via session"}, format="json")
    assert response.status_code == 201


def test_session_write_requires_csrf(creator):
    client = APIClient(enforce_csrf_checks=True)
    client.login(request=HttpRequest(), username=creator.username, password="pass-word-123")
    response = client.post("/api/v1/contents/", {"title": "no csrf"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_create_api_token_command_creates_a_creator():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "newcomer", "--creator", stdout=out, stderr=err)
    clear = out.getvalue().strip()
    assert clear.startswith("sg_")
    assert "Created user newcomer (creator)" in err.getvalue()
    token = ApiToken.objects.get(key_hash=token_hash(clear))
    assert token.user.username == "newcomer"
    assert user_is_creator(token.user)
    assert not token.user.has_usable_password()
    response = bearer(f"Bearer {clear}").post("/api/v1/contents/", {"title": "t"}, format="json")
    assert response.status_code == 201


def test_create_api_token_for_existing_viewer_keeps_them_a_viewer():
    user = UserFactory(username="watcher")
    out = io.StringIO()
    call_command("create_api_token", "watcher", stdout=out, stderr=io.StringIO())
    assert ApiToken.objects.filter(user=user).count() == 1
    assert not user_is_creator(user)


def test_demo_account_prints_a_stable_login(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = io.StringIO(), io.StringIO()
    call_command("demo_account", stdout=first)
    call_command("demo_account", stdout=second)
    assert first.getvalue() == second.getvalue()
    password = (tmp_path / "demo-login").read_text().strip()
    assert password in first.getvalue()
    assert APIClient().login(request=HttpRequest(), username="demo", password=password)


def test_a_revoked_token_is_refused_at_once(creator):
    token, clear = api_token_create(user=creator)
    client = bearer(f"Bearer {clear}")
    assert client.get(ME_URL).status_code == 200
    api_token_revoke(token=token)
    assert api_token_authenticate(clear) is None
    assert client.get(ME_URL).status_code == 401


def test_the_token_of_a_user_made_inactive_is_refused(creator):
    _, clear = api_token_create(user=creator)
    assert api_token_authenticate(clear) is not None
    creator.is_active = False
    creator.save()
    assert api_token_authenticate(clear) is None


def test_a_token_that_expires_is_refused(creator, time_machine):
    token, clear = api_token_create(user=creator, expires_at=timezone.now() + timedelta(hours=1))
    assert api_token_authenticate(clear) is not None
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_token_authenticate(clear) is None
    _, soon = api_token_create(user=creator, expires_at=timezone.now() + timedelta(seconds=1))
    assert api_token_authenticate(soon) is not None
    time_machine.move_to(timezone.now() + timedelta(seconds=2))
    assert api_token_authenticate(soon) is None


def test_without_the_cache_tokens_still_authenticate(creator, settings):
    _, clear = api_token_create(user=creator)
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    assert api_token_authenticate(clear).user == creator
