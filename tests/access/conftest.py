from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.cache import cache
from eth_account import Account
from eth_account.messages import encode_defunct
from rest_framework.test import APIClient

from apps.content.models import ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from tests.factories import ContentFactory

PUBLIC = "http://127.0.0.1:8000"
DOMAIN = "127.0.0.1:8000"
# Well-known test keys (eth-tester's accounts have the private keys 1, 2, 3, ...).
ALICE = Account.from_key("0x" + "00" * 31 + "0a")
BOB = Account.from_key("0x" + "00" * 31 + "0b")


@pytest.fixture(autouse=True)
def _fresh_ownership_cache():
    """Test chains reuse contract addresses (same deployer, same nonces): forget the answers
    an earlier test cached about them."""
    cache.delete_pattern("own:*")
    return


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.STREAMGATE_PUBLIC_URL = PUBLIC


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe_text(
    address: str,
    nonce: str,
    *,
    domain: str = DOMAIN,
    scheme: str | None = "http",
    uri: str = PUBLIC,
    chain_id: int = 1,
    issued_at: datetime | None = None,
    expiration: datetime | None = None,
    not_before: datetime | None = None,
    statement: str | None = "Sign in to StreamGate.",
) -> str:
    """An EIP-4361 message as a wallet would be asked to sign it."""
    from siwe import SiweMessage

    message = SiweMessage(
        scheme=scheme,
        domain=domain,
        address=address,
        uri=uri,
        version="1",
        chain_id=chain_id,
        issued_at=iso(issued_at or datetime.now(UTC)),
        nonce=nonce,
        statement=statement,
        expiration_time=iso(expiration) if expiration else None,
        not_before=iso(not_before) if not_before else None,
    )
    return message.prepare_message()


def sign(text: str, account=ALICE) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


class SignInClient(APIClient):
    """An API client that asks for nonces (keeping the cookie that binds them) and signs in."""

    def nonce(self, namespace: str = "siwe") -> str:
        response = self.post(f"/api/v1/auth/{namespace}/nonce/")
        assert response.status_code == 201, response.content
        return response.json()["nonce"]

    def siwe(self, text: str, signature: str):
        return self.post(
            "/api/v1/auth/siwe/verify/", {"message": text, "signature": signature}, format="json"
        )

    def siwe_sign_in(self, account=ALICE, **fields):
        text = siwe_text(account.address, self.nonce(), **fields)
        return self.siwe(text, sign(text, account))

    def siwe_link(self, account=BOB, **fields):
        """Link ``account``'s wallet to the account this client is signed in to."""
        text = siwe_text(account.address, self.nonce(), **fields)
        body = {"namespace": "eip155", "message": text, "signature": sign(text, account)}
        return self.post("/api/v1/auth/wallets/", body, format="json")


@pytest.fixture
def signin_client() -> SignInClient:
    return SignInClient()


@dataclass
class Published:
    content: object
    job: TranscodeJob
    folder: Path


def published(media_root: Path, *, gate=None, files: dict[str, bytes] | None = None, **fields):
    """A ready content whose published job folder holds ``files`` (on the test's disk)."""
    content = ContentFactory(status=ContentStatus.READY, gate=gate, **fields)
    job = TranscodeJob.objects.create(
        content=content, attempt=1, state=JobState.SUCCEEDED, output_prefix=""
    )
    job.output_prefix = f"renditions/{content.id}/{job.id}/"
    job.save(update_fields=["output_prefix"])
    content.published_job = job
    content.save(update_fields=["published_job"])
    folder = media_root / job.output_prefix
    for name, data in (files or {"master.m3u8": b"#EXTM3U\n"}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return Published(content=content, job=job, folder=folder)
