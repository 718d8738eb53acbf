"""The account page's API: linking wallets explicitly (never moving one from another account),
unlinking short of the last way to sign in, named API tokens shown once and refused from the
very call after their revocation, and signing out everywhere (sessions of every device, the
tokens wallet sign-ins issued, optionally every API token); the page itself."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from solders.keypair import Keypair

from apps.access.models import ApiToken, SignInNonce, TokenSource, WalletAccount
from apps.access.services import api_token_create
from apps.content.consumers import CLOSE_NOT_SIGNED_IN
from apps.content.models import ContentStatus
from streamgate.asgi import application
from tests.access.conftest import ALICE, BOB, SignInClient, sign, siwe_text
from tests.access.test_siws import siws_text
from tests.access.test_websocket_origin import handshake
from tests.factories import ContentFactory, UserFactory, WalletFactory

pytestmark = pytest.mark.django_db

WALLETS = "/api/v1/auth/wallets/"
TOKENS = "/api/v1/auth/tokens/"
EVERYWHERE = "/api/v1/auth/logout/everywhere/"
ME = "/api/v1/auth/me/"


def bearer(clear: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


def refused(response, status: int, reason: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["reason"] == reason, body
    return body


# --- linking --------------------------------------------------------------------------------


def test_a_signed_in_user_links_another_wallet_explicitly(signin_client):
    signin_client.siwe_sign_in(ALICE)
    tokens_before = ApiToken.objects.count()
    response = signin_client.siwe_link(BOB)
    assert response.status_code == 201, response.content
    assert response.json()["address"] == BOB.address
    assert response.json()["current"] is False
    alice = WalletAccount.objects.get(address=ALICE.address)
    bob = WalletAccount.objects.get(address=BOB.address)
    assert bob.user == alice.user
    assert ApiToken.objects.count() == tokens_before  # linking issues no token
    listed = signin_client.get(WALLETS).json()
    assert [(w["address"], w["current"]) for w in listed] == [
        (ALICE.address, True),  # this session signed in with Alice's wallet, and still is
        (BOB.address, False),
    ]
    # Linking it again says so (200), and unlinking Bob leaves this session (Alice's) alone.
    assert signin_client.siwe_link(BOB).status_code == 200
    assert signin_client.delete(f"{WALLETS}{bob.pk}/").status_code == 204
    assert signin_client.get(ME).status_code == 200
    # Bob's wallet now signs in to an account of its own.
    other = SignInClient().siwe_sign_in(BOB)
    assert WalletAccount.objects.get(address=BOB.address).user != alice.user
    assert other.status_code == 200


def test_a_wallet_linked_to_another_account_is_refused_not_moved(signin_client):
    assert SignInClient().siwe_sign_in(BOB).status_code == 200  # Bob's own account
    bobs_account = WalletAccount.objects.get(address=BOB.address).user
    signin_client.siwe_sign_in(ALICE)
    text = siwe_text(BOB.address, signin_client.nonce())
    body = {"namespace": "eip155", "message": text, "signature": sign(text, BOB)}
    answer = refused(
        signin_client.post(WALLETS, body, format="json"), 409, "wallet_linked_elsewhere"
    )
    assert "linked to another StreamGate account" in answer["detail"]
    assert WalletAccount.objects.get(address=BOB.address).user == bobs_account
    # The refused message is spent: it cannot be replayed later.
    refused(signin_client.post(WALLETS, body, format="json"), 401, "nonce_used")


def test_a_solana_wallet_is_linked(signin_client):
    signin_client.siwe_sign_in(ALICE)
    keypair = Keypair()
    address = str(keypair.pubkey())
    text = siws_text(address, signin_client.nonce("solana"))
    signature = str(keypair.sign_message(text.encode()))
    body = {"namespace": "solana", "message": text, "signature": signature}
    response = signin_client.post(WALLETS, body, format="json")
    assert response.status_code == 400
    assert response.json()["public_key"] == ["A Solana link needs public_key."]
    response = signin_client.post(WALLETS, {**body, "public_key": address}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["account"] == f"solana:mainnet:{address}"
    assert WalletAccount.objects.get(address=address).user.wallets.count() == 2


def test_linking_needs_a_signed_in_caller_and_a_good_signature(signin_client):
    anonymous = SignInClient()
    text = siwe_text(BOB.address, anonymous.nonce())
    body = {"namespace": "eip155", "message": text, "signature": sign(text, BOB)}
    assert anonymous.post(WALLETS, body, format="json").status_code == 401
    signin_client.siwe_sign_in(ALICE)
    text = siwe_text(BOB.address, signin_client.nonce())
    forged = {"namespace": "eip155", "message": text, "signature": sign(text, ALICE)}
    response = signin_client.post(WALLETS, forged, format="json")
    assert response.status_code == 401
    assert response.json()["reason"] in {"bad_signature", "signature_mismatch"}
    assert (
        signin_client.post(WALLETS, {**body, "namespace": "tron"}, format="json").status_code == 400
    )
    assert not WalletAccount.objects.filter(address=BOB.address).exists()


def test_the_last_way_to_sign_in_cannot_be_unlinked(signin_client):
    signin_client.siwe_sign_in(ALICE)
    alice = WalletAccount.objects.get(address=ALICE.address)
    answer = refused(signin_client.delete(f"{WALLETS}{alice.pk}/"), 409, "last_wallet")
    assert "only way to sign in" in answer["detail"]
    # With a password, the last wallet may go.
    user = alice.user
    user.set_password("a-long-pass-phrase")
    user.save()
    password_client = APIClient()
    password_client.force_login(user)
    assert password_client.delete(f"{WALLETS}{alice.pk}/").status_code == 204
    # Someone else's wallet is not among yours.
    stranger = WalletFactory()
    assert password_client.delete(f"{WALLETS}{stranger.pk}/").status_code == 404


def test_a_token_minted_in_a_wallet_session_goes_with_the_wallet(signin_client):
    """Whoever held a wallet (a stolen one, say) cannot keep a way in after its owner unlinks
    it: a token created in that wallet's session, or with a token it issued, hangs on it."""
    signed_in = signin_client.siwe_sign_in(ALICE)
    assert signed_in.status_code == 200, signed_in.content
    alice = WalletAccount.objects.get(address=ALICE.address)
    from_session = signin_client.post(TOKENS, {"name": "from the session"}, format="json")
    assert from_session.status_code == 201, from_session.content
    from_token = bearer(signed_in.json()["token"]).post(
        TOKENS, {"name": "from its token"}, format="json"
    )
    assert from_token.status_code == 201, from_token.content
    minted = [from_session.json()["token"], from_token.json()["token"]]
    assert all(bearer(clear).get(ME).status_code == 200 for clear in minted)
    # The owner, signed in with a password, unlinks the wallet: both tokens stop at once.
    user = alice.user
    user.set_password("a-long-pass-phrase")
    user.save()
    owner = APIClient()
    owner.force_login(user)
    assert owner.delete(f"{WALLETS}{alice.pk}/").status_code == 204
    assert [bearer(clear).get(ME).status_code for clear in minted] == [401, 401]
    # A token made with a password session hangs on no wallet.
    plain = owner.post(TOKENS, {"name": "laptop"}, format="json").json()
    assert ApiToken.objects.get(pk=plain["id"]).wallet_id is None


# --- API tokens ------------------------------------------------------------------------------


def test_a_named_token_is_shown_once_and_works(viewer):
    client = APIClient()
    client.force_login(viewer)
    response = client.post(
        TOKENS, {"name": " deploy script ", "expires_in_days": 30}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    created = response.json()
    assert created["name"] == "deploy script"
    assert created["token"].startswith("sg_")
    assert created["token"].startswith(created["prefix"])
    assert created["source"] == TokenSource.ACCOUNT
    expires = ApiToken.objects.get(pk=created["id"]).expires_at
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)
    me = bearer(created["token"]).get(ME)
    assert me.status_code == 200
    assert me.json()["username"] == viewer.username
    listed = client.get(TOKENS).json()
    assert [t["name"] for t in listed] == ["deploy script"]
    assert "token" not in listed[0]  # the secret is never shown again
    assert listed[0]["last_used_at"] is not None
    forever = client.post(TOKENS, {"name": "forever"}, format="json").json()
    assert forever["expires_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": "soon"}, "expires_in_days"),
    ],
)
def test_a_token_needs_a_name_of_at_most_100_characters(viewer, body, field):
    client = APIClient()
    client.force_login(viewer)
    response = client.post(TOKENS, body, format="json")
    assert response.status_code == 400
    assert response.json()[field]  # a message naming the field
    assert not ApiToken.objects.exists()


def test_a_revoked_token_is_refused_on_the_very_next_call(viewer):
    session = APIClient()
    session.force_login(viewer)
    created = session.post(TOKENS, {"name": "laptop"}, format="json").json()
    script = bearer(created["token"])
    for _ in range(2):  # the second answer comes from this process's memo of the token row
        assert script.get(ME).status_code == 200
    assert session.delete(f"{TOKENS}{created['id']}/").status_code == 204
    refused(script.get(ME), 401, "authentication_failed")
    # Someone else cannot revoke yours: 404, as if it did not exist.
    _, other = api_token_create(user=viewer, name="other")
    stranger = APIClient()
    stranger.force_login(UserFactory())
    mine = ApiToken.objects.get(name="other")
    refused(stranger.delete(f"{TOKENS}{mine.pk}/"), 404, "not_found")
    assert bearer(other).get(ME).status_code == 200


# --- sign out everywhere ---------------------------------------------------------------------


def test_sign_out_everywhere_ends_every_session_and_sign_in_token(signin_client):
    sign_in_token = signin_client.siwe_sign_in(ALICE).json()["token"]
    user = WalletAccount.objects.get(address=ALICE.address).user
    laptop = Client()  # another device, a Django session of its own
    laptop.force_login(user)
    assert laptop.get(ME).status_code == 200
    script_token = signin_client.post(TOKENS, {"name": "ci"}, format="json").json()["token"]

    response = signin_client.post(EVERYWHERE, {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tokens_revoked"] == 1  # the sign-in's token

    assert signin_client.get(ME).status_code == 401  # this browser
    assert laptop.get(ME).status_code == 401  # the other device
    assert laptop.get("/account/").status_code == 302
    assert bearer(sign_in_token).get(ME).status_code == 401
    assert bearer(script_token).get(ME).status_code == 200  # API tokens stay unless asked

    # A new sign-in opens a session of the new generation, which stands.
    again = SignInClient()
    assert again.siwe_sign_in(ALICE).status_code == 200
    assert again.get(ME).status_code == 200
    answer = bearer(script_token).post(EVERYWHERE, {"revoke_api_tokens": True}, format="json")
    assert answer.json()["tokens_revoked"] == 2  # the script's token and again's sign-in token
    assert bearer(script_token).get(ME).status_code == 401
    assert again.get(ME).status_code == 401


def test_sign_out_everywhere_needs_a_caller_and_a_boolean(api_client, viewer):
    assert api_client.post(EVERYWHERE).status_code == 401
    api_client.force_login(viewer)
    response = api_client.post(EVERYWHERE, {"revoke_api_tokens": "perhaps"}, format="json")
    assert response.status_code == 400
    assert response.json()["revoke_api_tokens"]


@pytest.mark.django_db(transaction=True)
def test_a_websocket_on_a_session_ended_elsewhere_is_refused(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMGATE_PUBLIC_URL = "https://video.example"
    settings.ALLOWED_HOSTS = ["video.example", "testserver"]

    @database_sync_to_async
    def draft_and_session():
        content = ContentFactory(status=ContentStatus.DRAFT)
        browser = Client()
        browser.force_login(content.owner)
        return content, browser.cookies["sessionid"].value

    @database_sync_to_async
    def everywhere(user):
        client = APIClient()
        client.force_login(user)
        assert client.post(EVERYWHERE).status_code == 200

    async def run():
        content, cookie = await draft_and_session()
        origin = "https://video.example"
        first = await handshake(str(content.id), origin=origin, cookie=cookie)
        assert first["type"] == "status"
        await everywhere(content.owner)
        headers = [(b"host", b"video.example"), (b"origin", origin.encode())]
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(
            application, f"/ws/contents/{content.id}/", headers=headers
        )
        await communicator.connect(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": CLOSE_NOT_SIGNED_IN}
        await communicator.disconnect(timeout=5)

    async_to_sync(run)()


# --- the page --------------------------------------------------------------------------------


def test_the_account_page_is_for_signed_in_users(client, viewer):
    response = client.get("/account/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/account/"
    client.force_login(viewer)
    page = client.get("/account/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<a href="/account/" aria-current="page">Account</a>' in html
    assert 'id="account-config"' in html
    assert SignInNonce.objects.count() == 0  # nothing is issued until the visitor links
