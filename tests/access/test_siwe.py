"""Sign-In with Ethereum through the API: every refusal is a 401 with a reason, never a 500."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.access.models import ApiToken, SignInNonce, WalletAccount, WalletKind
from apps.access.selectors import api_token_authenticate
from tests.access.conftest import ALICE, BOB, SignInClient, sign, siwe_text
from tests.factories import CreatorFactory

pytestmark = pytest.mark.django_db


def refused(response, reason: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["reason"] == reason, body
    assert body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_nonce_is_fresh_alphanumeric_and_bound_to_a_cookie(signin_client):
    response = signin_client.post("/api/v1/auth/siwe/nonce/")
    assert response.status_code == 201
    body = response.json()
    assert body["nonce"].isalnum()
    assert len(body["nonce"]) >= 16
    assert (body["domain"], body["uri"]) == ("127.0.0.1:8000", "http://127.0.0.1:8000")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
    cookie = response.cookies["sg_signin"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/api/v1/auth/"
    second = signin_client.post("/api/v1/auth/siwe/nonce/").json()["nonce"]
    assert second != body["nonce"]


def test_valid_sign_in_creates_a_viewer_wallet_and_an_expiring_token(signin_client):
    response = signin_client.siwe_sign_in(ALICE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == f"eip155:1:{ALICE.address}"
    token = api_token_authenticate(body["token"])
    assert token is not None
    wallet = WalletAccount.objects.get()
    assert (wallet.address, wallet.kind, wallet.chain) == (
        ALICE.address,
        WalletKind.KEY,
        "eip155:1",
    )
    assert token.user == wallet.user
    assert token.wallet == wallet
    assert token.source == "siwe"
    assert not wallet.user.has_usable_password()
    assert not wallet.user.groups.exists()  # a viewer, not a creator
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=6) < lifetime <= timedelta(days=7)
    # The token works, and the browser also got a session.
    me = SignInClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.get("/api/v1/auth/me/").json()["wallets"][0]["address"] == ALICE.address
    assert signin_client.get("/api/v1/auth/me/").json()["username"] == ALICE.address.lower()


def test_signing_in_again_on_another_chain_is_the_same_account(signin_client, settings):
    first = signin_client.siwe_sign_in(ALICE, chain_id=1)
    second = SignInClient().siwe_sign_in(ALICE, chain_id=137)
    assert first.status_code == second.status_code == 200
    assert WalletAccount.objects.count() == 1
    assert second.json()["account"] == f"eip155:137:{ALICE.address}"


@pytest.mark.parametrize(
    "signature",
    ["garbage", "0x1234", "0x" + "00" * 65, "0x" + "ff" * 65, "0x" + "zz" * 65, ""],
    ids=["garbage", "short", "zero", "ones", "not-hex", "empty"],
)
def test_malformed_signatures_are_refused(signin_client, signature):
    text = siwe_text(ALICE.address, signin_client.nonce())
    response = signin_client.siwe(text, signature)
    if signature == "":
        assert response.status_code == 400  # a required field left blank
        return
    refused(response, "bad_signature")


def test_another_signer_is_refused(signin_client):
    text = siwe_text(ALICE.address, signin_client.nonce())
    refused(signin_client.siwe(text, sign(text, BOB)), "bad_signature")


def test_a_refused_signature_leaves_the_nonce_usable(signin_client):
    nonce = signin_client.nonce()
    text = siwe_text(ALICE.address, nonce)
    refused(signin_client.siwe(text, sign(text, BOB)), "bad_signature")
    assert signin_client.siwe(text, sign(text)).status_code == 200


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"domain": "evil.example"}, "domain_mismatch"),
        ({"domain": "127.0.0.1:9000"}, "domain_mismatch"),
        ({"scheme": "https"}, "scheme_mismatch"),
        ({"scheme": None}, "scheme_mismatch"),  # no scheme means https (EIP-4361)
        ({"uri": "https://evil.example/login"}, "uri_mismatch"),
        ({"uri": "http://127.0.0.1:9000/"}, "uri_mismatch"),
        ({"chain_id": 999999}, "chain_not_allowed"),
    ],
    ids=["domain", "port", "scheme", "no-scheme", "uri", "uri-port", "chain"],
)
def test_messages_for_somewhere_else_are_refused(signin_client, fields, reason):
    refused(signin_client.siwe_sign_in(ALICE, **fields), reason)


def test_times_are_checked(signin_client):
    now = datetime.now(UTC)
    refused(signin_client.siwe_sign_in(ALICE, expiration=now - timedelta(seconds=1)), "expired")
    refused(
        signin_client.siwe_sign_in(ALICE, not_before=now + timedelta(minutes=5)), "not_yet_valid"
    )
    refused(
        signin_client.siwe_sign_in(ALICE, issued_at=now + timedelta(minutes=5)),
        "issued_in_future",
    )
    refused(
        signin_client.siwe_sign_in(ALICE, issued_at=now - timedelta(hours=1)),
        "issued_too_long_ago",
    )
    # A Not Before at the start of time is merely long past (no date overflow, no 500).
    response = signin_client.siwe_sign_in(ALICE, not_before=datetime(1, 1, 1, tzinfo=UTC))
    assert response.status_code == 200, response.json()
    # Within the allowed clock skew a wallet's clock may run a little ahead.
    response = signin_client.siwe_sign_in(ALICE, issued_at=now + timedelta(seconds=20))
    assert response.status_code == 200


def test_a_replayed_message_is_refused(signin_client):
    text = siwe_text(ALICE.address, signin_client.nonce())
    signature = sign(text)
    assert signin_client.siwe(text, signature).status_code == 200
    refused(signin_client.siwe(text, signature), "nonce_used")


def test_an_unknown_nonce_is_refused(signin_client):
    signin_client.nonce()  # the client has a cookie, but not for this nonce
    text = siwe_text(ALICE.address, "abcdefgh12345678")
    refused(signin_client.siwe(text, sign(text)), "nonce_unknown")


def test_an_expired_nonce_is_refused(signin_client):
    nonce = signin_client.nonce()
    SignInNonce.objects.filter(value=nonce).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    text = siwe_text(ALICE.address, nonce)
    refused(signin_client.siwe(text, sign(text)), "nonce_expired")


def test_a_nonce_issued_to_another_client_is_refused(signin_client):
    nonce = signin_client.nonce()
    text = siwe_text(ALICE.address, nonce)
    other = SignInClient()
    other.nonce()
    refused(other.siwe(text, sign(text)), "nonce_not_yours")
    refused(SignInClient().siwe(text, sign(text)), "nonce_not_yours")  # no cookie at all


def test_a_lowercase_address_is_refused(signin_client):
    text = siwe_text(ALICE.address, signin_client.nonce()).replace(
        ALICE.address, ALICE.address.lower()
    )
    refused(signin_client.siwe(text, sign(text)), "address_not_checksummed")


def test_tampered_text_is_refused(signin_client):
    text = siwe_text(ALICE.address, signin_client.nonce())
    signature = sign(text)
    tampered = text.replace("Sign in to StreamGate.", "Sign in to StreamGate!")
    refused(signin_client.siwe(tampered, signature), "bad_signature")
    # Text that parses to the same fields but is not what was signed byte for byte.
    refused(signin_client.siwe(text + "\n", signature), "malformed_message")


@pytest.mark.parametrize("text", ["", "hello", "x" * 100])
def test_garbage_messages_are_refused(signin_client, text):
    signin_client.nonce()
    response = signin_client.siwe(text, "0x" + "11" * 65)
    if not text:
        assert response.status_code == 400
    else:
        refused(response, "malformed_message")


def test_an_oversize_message_is_refused_before_parsing(signin_client, settings):
    text = siwe_text(ALICE.address, signin_client.nonce(), statement="x" * 3000)
    response = signin_client.siwe(text, sign(text))
    assert response.status_code == 400
    assert "2048" in response.json()["message"][0]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_verifies_of_one_nonce_exactly_one_wins():
    client = SignInClient()
    text = siwe_text(ALICE.address, client.nonce())
    signature = sign(text)
    cookie = client.cookies["sg_signin"].value
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def verify():
        racer = SignInClient()
        racer.cookies["sg_signin"] = cookie
        barrier.wait()
        try:
            statuses.append(racer.siwe(text, signature).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=verify) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401]
    assert ApiToken.objects.count() == 1, list(ApiToken.objects.values())
    assert SignInNonce.objects.get().used_at is not None


def test_signing_in_while_signed_in_signs_in_and_never_links(signin_client, client_for):
    """Linking is explicit (POST auth/wallets/, tests/access/test_account.py): a sign-in made
    while signed in, on a shared computer say, must not add the wallet to whoever was there."""
    creator = CreatorFactory()
    client = signin_client
    client.force_login(creator)
    client.credentials(**client_for(creator)._credentials)
    response = client.siwe_sign_in(ALICE)
    assert response.status_code == 200
    wallet = WalletAccount.objects.get()
    assert wallet.user != creator
    assert api_token_authenticate(response.json()["token"]).user == wallet.user
    client.credentials()  # the session alone: it is now Alice's account's
    assert client.get("/api/v1/auth/me/").json()["username"] == wallet.user.username


def test_the_sign_in_endpoints_are_throttled(signin_client, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"signin": "3/min"})
    from django.core.cache import cache

    cache.delete_pattern("throttle_*")
    codes = [signin_client.post("/api/v1/auth/siwe/nonce/").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    cache.delete_pattern("throttle_*")


@pytest.mark.django_db(transaction=True)
def test_a_viewer_name_taken_while_signing_in_gets_the_next_one():
    """The name the sign-in picked is inserted by another transaction before it commits: the
    sign-in waits on the unique index, then takes the next name (no 500)."""
    import psycopg

    client = SignInClient()
    text = siwe_text(ALICE.address, client.nonce())
    signature = sign(text)
    name = ALICE.address.lower()
    dsn = connection.settings_dict
    other = psycopg.connect(
        host=dsn["HOST"], port=dsn["PORT"], user=dsn["USER"], dbname=dsn["NAME"]
    )
    other.execute(
        "INSERT INTO auth_user (username, password, is_superuser, first_name, last_name,"
        " email, is_staff, is_active, date_joined) VALUES (%s, '!', false, '', '', '', false,"
        " true, now())",
        [name],
    )
    statuses: list[int] = []

    def sign_in():
        try:
            statuses.append(client.siwe(text, signature).status_code)
        finally:
            connection.close()

    racer = threading.Thread(target=sign_in)
    racer.start()
    with psycopg.connect(
        host=dsn["HOST"], port=dsn["PORT"], user=dsn["USER"], dbname=dsn["NAME"]
    ) as watcher:
        for _ in range(200):  # until the sign-in waits on the other transaction's row
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock'",
                [dsn["NAME"]],
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
    assert waiting, "the sign-in never reached the insert"
    other.commit()
    other.close()
    racer.join(10)
    assert statuses == [200]
    assert WalletAccount.objects.get().user.username == f"{name}-2"
