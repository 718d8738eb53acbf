"""Sign in with Solana through the API: the wallet-standard SIWS message, ed25519 signatures."""

from datetime import UTC, datetime, timedelta

import pytest
from solders.keypair import Keypair

from apps.access.models import WalletAccount
from apps.access.selectors import api_token_authenticate
from apps.access.signin import SignInRejected, siws_parse_text
from tests.access.conftest import DOMAIN, PUBLIC, iso

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/auth/solana/verify/"


def siws_text(address: str, nonce: str, **overrides) -> str:
    """The message as @solana/wallet-standard-util's createSignInMessageText builds it."""
    fields = {
        "domain": f"http://{DOMAIN}",
        "statement": "Sign in to StreamGate.",
        "URI": PUBLIC,
        "Version": "1",
        "Chain ID": "mainnet",
        "Nonce": nonce,
        "Issued At": iso(datetime.now(UTC)),
        **overrides,
    }
    message = f"{fields.pop('domain')} wants you to sign in with your Solana account:\n{address}"
    statement = fields.pop("statement")
    if statement:
        message += f"\n\n{statement}"
    lines = [f"{label}: {value}" for label, value in fields.items() if value is not None]
    return message + ("\n\n" + "\n".join(lines) if lines else "")


def verify(client, text: str, keypair: Keypair, *, signer: Keypair | None = None):
    signature = (signer or keypair).sign_message(text.encode())
    return client.post(
        VERIFY,
        {"message": text, "signature": str(signature), "public_key": str(keypair.pubkey())},
        format="json",
    )


def refused(response, reason: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["reason"] == reason


def test_valid_sign_in(signin_client):
    keypair = Keypair()
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("solana"))
    response = verify(signin_client, text, keypair)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == f"solana:mainnet:{keypair.pubkey()}"
    wallet = WalletAccount.objects.get()
    assert (wallet.namespace, wallet.address) == ("solana", str(keypair.pubkey()))
    assert api_token_authenticate(body["token"]).user == wallet.user


def test_tampered_message_is_refused(signin_client):
    keypair = Keypair()
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("solana"))
    signature = keypair.sign_message(text.encode())
    tampered = text.replace("Sign in to StreamGate.", "Send all my tokens.")
    response = signin_client.post(
        VERIFY,
        {"message": tampered, "signature": str(signature), "public_key": str(keypair.pubkey())},
        format="json",
    )
    refused(response, "bad_signature")


def test_another_key_is_refused(signin_client):
    keypair, other = Keypair(), Keypair()
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("solana"))
    refused(verify(signin_client, text, keypair, signer=other), "bad_signature")
    # Signed by the other key and presented as the other key: not the message's address.
    refused(verify(signin_client, text, other), "bad_signature")


def test_wrong_nonce_is_refused(signin_client):
    keypair = Keypair()
    signin_client.nonce("solana")
    text = siws_text(str(keypair.pubkey()), "abcdefgh12345678")
    refused(verify(signin_client, text, keypair), "nonce_unknown")
    # A nonce issued for Ethereum sign-in is not one for Solana.
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("siwe"))
    refused(verify(signin_client, text, keypair), "nonce_unknown")


def test_replay_is_refused(signin_client):
    keypair = Keypair()
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("solana"))
    assert verify(signin_client, text, keypair).status_code == 200
    refused(verify(signin_client, text, keypair), "nonce_used")


def test_other_signed_bytes_are_refused(signin_client):
    """A signature over anything but a SIWS message with our nonce (a transaction, a message
    for another site) opens nothing."""
    keypair = Keypair()
    nonce = signin_client.nonce("solana")
    refused(verify(signin_client, f"Nonce: {nonce}", keypair), "malformed_message")
    text = siws_text(str(keypair.pubkey()), nonce, domain="https://other.example")
    refused(verify(signin_client, text, keypair), "domain_mismatch")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Chain ID": "testnet"}, "chain_not_allowed"),
        ({"URI": "https://evil.example"}, "uri_mismatch"),
        ({"Expiration Time": iso(datetime.now(UTC) - timedelta(minutes=1))}, "expired"),
        ({"Issued At": iso(datetime.now(UTC) + timedelta(minutes=5))}, "issued_in_future"),
        ({"Nonce": None}, "malformed_message"),
        ({"Version": "2"}, "malformed_message"),
        ({"URI": "https://[x"}, "uri_mismatch"),
        ({"Not Before": "0001-01-01T00:00:00Z"}, None),
    ],
    ids=["chain", "uri", "expired", "future", "no-nonce", "version", "not-a-url", "year-one"],
)
def test_field_checks(signin_client, overrides, reason):
    keypair = Keypair()
    nonce = signin_client.nonce("solana")
    text = siws_text(str(keypair.pubkey()), overrides.pop("Nonce", nonce), **overrides)
    if reason is None:  # acceptable, however odd (a Not Before long past)
        assert verify(signin_client, text, keypair).status_code == 200
    else:
        refused(verify(signin_client, text, keypair), reason)


def test_devnet_and_caip2_chain_ids_are_accepted(signin_client):
    for chain_id, account in (("devnet", "solana:devnet"), ("solana:mainnet", "solana:mainnet")):
        keypair = Keypair()
        text = siws_text(
            str(keypair.pubkey()), signin_client.nonce("solana"), **{"Chain ID": chain_id}
        )
        response = verify(signin_client, text, keypair)
        assert response.status_code == 200, response.content
        assert response.json()["account"] == f"{account}:{keypair.pubkey()}"


def test_malformed_signature_and_key_are_refused(signin_client):
    keypair = Keypair()
    text = siws_text(str(keypair.pubkey()), signin_client.nonce("solana"))
    for signature, key in (("not-base58!", str(keypair.pubkey())), ("1111", "0OIl")):
        response = signin_client.post(
            VERIFY, {"message": text, "signature": signature, "public_key": key}, format="json"
        )
        refused(response, "bad_signature")


def test_the_parser_round_trips_the_wallet_standard_format():
    keypair = Keypair()
    text = siws_text(str(keypair.pubkey()), "abcdefgh1234", statement=None)
    parsed = siws_parse_text(text)
    assert parsed.statement is None
    assert parsed.nonce == "abcdefgh1234"
    with_resources = text + "\nResources:\n- https://a.example/1\n- ipfs://bafy"
    assert siws_parse_text(with_resources).resources == ("https://a.example/1", "ipfs://bafy")
    with pytest.raises(SignInRejected):
        siws_parse_text(text + "\nColour: blue")  # a field SIWS does not have
    with pytest.raises(SignInRejected):
        siws_parse_text(text.replace("Version: 1\n", "") + "\nVersion: 1")  # out of order
