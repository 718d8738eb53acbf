"""Tokens expire and can be revoked; wallets are listed and unlinked; logout; housekeeping;
the admin's token listing and its "check access" page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.access.models import ApiToken, SignInNonce, WalletAccount
from apps.access.services import api_token_create, signin_nonce_issue
from apps.access.tasks import access_prune
from apps.content.models import ContentStatus
from tests.access.conftest import ALICE, BOB, SignInClient
from tests.factories import ContentFactory, StaffFactory, UserFactory, WalletFactory

pytestmark = pytest.mark.django_db


def bearer(clear: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


def test_an_expired_token_is_refused(viewer):
    _, clear = api_token_create(user=viewer, expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(clear).get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token."
    _, live = api_token_create(user=viewer, expires_at=timezone.now() + timedelta(minutes=1))
    assert bearer(live).get("/api/v1/auth/me/").status_code == 200


def test_tokens_are_listed_and_revoked_by_their_owner(viewer):
    first, clear = api_token_create(user=viewer, name="laptop")
    _, other_clear = api_token_create(user=viewer, name="phone")
    client = bearer(clear)
    listed = client.get("/api/v1/auth/tokens/").json()
    assert [t["name"] for t in listed] == ["phone", "laptop"]
    assert [t["current"] for t in listed] == [False, True]
    assert "key_hash" not in listed[0]
    phone_id = listed[0]["id"]
    assert client.delete(f"/api/v1/auth/tokens/{phone_id}/").status_code == 204
    assert bearer(other_clear).get("/api/v1/auth/me/").status_code == 401
    assert ApiToken.objects.get(pk=phone_id).revoked_at is not None
    # Someone else's token is not yours to revoke.
    _, stranger = api_token_create(user=UserFactory())
    assert bearer(stranger).delete(f"/api/v1/auth/tokens/{first.pk}/").status_code == 404


def test_logout_revokes_the_token_and_ends_the_session(signin_client):
    token = signin_client.siwe_sign_in(ALICE).json()["token"]
    assert signin_client.get("/api/v1/auth/me/").status_code == 200  # the session
    assert bearer(token).post("/api/v1/auth/logout/").status_code == 204
    assert bearer(token).get("/api/v1/auth/me/").status_code == 401
    assert signin_client.post("/api/v1/auth/logout/").status_code == 204
    assert signin_client.get("/api/v1/auth/me/").status_code == 401


def test_wallets_are_listed_and_unlinked(signin_client):
    token = signin_client.siwe_sign_in(ALICE).json()["token"]
    client = bearer(token)
    assert signin_client.siwe_link(BOB).status_code == 201
    bob_token = SignInClient().siwe_sign_in(BOB).json()["token"]
    wallets = client.get("/api/v1/auth/wallets/").json()
    assert [w["address"] for w in wallets] == [ALICE.address, BOB.address]
    assert wallets[0]["account"] == f"eip155:1:{ALICE.address}"
    bob = WalletAccount.objects.get(address=BOB.address)
    assert client.delete(f"/api/v1/auth/wallets/{bob.pk}/").status_code == 204
    # The tokens Bob's sign-ins issued go with the wallet.
    assert bearer(bob_token).get("/api/v1/auth/me/").status_code == 401
    alice = WalletAccount.objects.get(address=ALICE.address)
    response = client.delete(f"/api/v1/auth/wallets/{alice.pk}/")
    assert response.status_code == 409
    assert response.json()["reason"] == "last_wallet"
    assert client.delete("/api/v1/auth/wallets/999999/").status_code == 404


def test_a_session_ends_when_its_sign_in_wallet_is_unlinked(signin_client):
    """A browser session opened by Bob's wallet does not outlive Bob's unlinking."""
    token = signin_client.siwe_sign_in(ALICE).json()["token"]
    assert signin_client.siwe_link(BOB).status_code == 201
    browser = SignInClient()
    assert browser.siwe_sign_in(BOB).status_code == 200  # Alice's account, by Bob's wallet
    assert browser.get("/api/v1/auth/me/").status_code == 200
    bob = WalletAccount.objects.get(address=BOB.address)
    assert bearer(token).delete(f"/api/v1/auth/wallets/{bob.pk}/").status_code == 204
    assert browser.get("/api/v1/auth/me/").status_code == 401
    # Alice's own session (from her wallet, still linked) goes on.
    assert signin_client.get("/api/v1/auth/me/").status_code == 200


def test_the_wallet_and_token_endpoints_need_a_caller(api_client):
    for url in ("/api/v1/auth/me/", "/api/v1/auth/wallets/", "/api/v1/auth/tokens/"):
        assert api_client.get(url).status_code == 401


def test_prune_removes_spent_nonces_and_long_dead_tokens(viewer):
    fresh = signin_nonce_issue(namespace="eip155", client_secret="c")
    old = signin_nonce_issue(namespace="eip155", client_secret="c")
    SignInNonce.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    dead, _ = api_token_create(user=viewer, expires_at=timezone.now() - timedelta(days=31))
    recent, _ = api_token_create(user=viewer, expires_at=timezone.now() - timedelta(days=1))
    revoked, _ = api_token_create(user=viewer)
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now() - timedelta(days=40))
    assert access_prune() == {"nonces": 1, "tokens": 2, "viewer_windows": 0}
    assert list(SignInNonce.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [recent.pk]


def test_admin_lists_tokens_and_revokes_them(client, viewer):
    staff = StaffFactory(is_superuser=True)
    token, clear = api_token_create(user=viewer, name="laptop")
    client.force_login(staff)
    page = client.get("/admin/access/apitoken/")
    assert page.status_code == 200
    assert token.prefix in page.content.decode()
    response = client.post(
        "/admin/access/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert bearer(clear).get("/api/v1/auth/me/").status_code == 401
    assert client.get("/admin/access/walletaccount/").status_code == 200


def test_admin_check_access_explains_a_decision(client):
    staff = StaffFactory(is_superuser=True)
    listed = "0x" + "11" * 20
    content = ContentFactory(
        status=ContentStatus.READY,
        gate={
            "any": [
                {"allowlist": {"accounts": [f"eip155:1:{listed}"]}},
                {"not": {"allowlist": {"accounts": ["eip155:1:0x" + "22" * 20]}}},
            ]
        },
    )
    client.force_login(staff)
    url = "/admin/access/walletaccount/check-access/"
    assert client.get(url).status_code == 200
    page = client.post(url, {"content": str(content.id), "account": "eip155:1:0x" + "22" * 20})
    html = page.content.decode()
    assert "Decision: denied" in html
    assert "none of your wallets is listed" in html
    assert "<code>not</code>" in html
    viewer = UserFactory()
    WalletFactory(user=viewer, address="0x" + "33" * 20)
    page = client.post(url, {"content": str(content.id), "username": viewer.username})
    assert "Decision: allowed" in page.content.decode()
    page = client.post(url, {"content": str(content.id), "account": "not-an-account"})
    assert "CAIP-10" in page.content.decode()
    # Not for non-staff.
    client.force_login(UserFactory())
    assert client.get(url).status_code == 302
