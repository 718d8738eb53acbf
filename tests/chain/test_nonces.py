"""Nonces that heal, against a real JSON-RPC node (npx hardhat node): the chain reset under a
running stack (hardhat_reset), a nonce reserved by a process that died before broadcasting
(filled with a 0-value self-transfer so the transactions above it mine), and the key used
elsewhere. Each heal is counted in streamgate_signer_nonce_reconciled_total."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from eth_account import Account
from prometheus_client import REGISTRY

from apps.chain.chains import chain, web3_for
from apps.chain.models import ChainContract, ContractKind, RegistrationStatus, SignerNonce
from apps.chain.services import registration_advance, registration_request
from apps.chain.transactions import next_nonce
from tests.factories import registrable_content
from tests.support.jsonrpc import HARDHAT_KEYS, rpc, send_signed

HARDHAT = "eip155:31337"
SIGNER = Account.from_key(HARDHAT_KEYS[0]).address
pytestmark = pytest.mark.django_db


@pytest.fixture
def hardhat(node, settings, media_root):
    rpc(node, "hardhat_reset")  # each test starts from a fresh chain
    settings.CHAIN_RPC_URLS = {HARDHAT: node}
    settings.CHAIN_SIGNER_KEY = HARDHAT_KEYS[0]
    settings.CHAIN_OVERRIDES = {}
    return node


def healed(reason: str) -> float:
    labels = {"chain": HARDHAT, "reason": reason}
    return REGISTRY.get_sample_value("streamgate_signer_nonce_reconciled_total", labels) or 0.0


def deploy(*flags: str) -> ChainContract:
    call_command("deploy_contracts", "--chain", HARDHAT, *flags, stdout=io.StringIO())
    return ChainContract.objects.filter(chain=HARDHAT, kind=ContractKind.REGISTRY).latest("pk")


def content_with_source():
    content = registrable_content()
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(b"v"))
    content.save()
    return content


def advance(registration_id: int, captured) -> None:
    with captured():
        registration_advance(registration_id=registration_id)


def test_deploy_and_registration_continue_after_the_chain_is_reset(
    hardhat, django_capture_on_commit_callbacks
):
    deploy("--with-test-tokens")  # nonces 0-3
    assert SignerNonce.objects.get(chain=HARDHAT, address=SIGNER).next_nonce == 4
    rpc(hardhat, "hardhat_reset")  # the chain restarted under the running stack
    before = healed("nonce_too_high")

    registry = deploy()  # today's code: "Nonce too high. Expected nonce to be 0 but got 4"

    web3 = web3_for(HARDHAT)
    assert web3.eth.get_code(registry.address) != b""
    assert SignerNonce.objects.get(chain=HARDHAT, address=SIGNER).next_nonce == 1
    assert healed("nonce_too_high") == before + 1
    registration = registration_request(content=content_with_source(), caip2=HARDHAT)
    advance(registration.pk, django_capture_on_commit_callbacks)  # sent, mined at once
    advance(registration.pk, django_capture_on_commit_callbacks)
    registration.refresh_from_db()
    assert (registration.status, registration.nonce) == (RegistrationStatus.CONFIRMED, 1)


def test_a_nonce_that_never_reached_the_node_is_filled(
    hardhat, settings, django_capture_on_commit_callbacks
):
    """A deployment reserved nonce n and died before broadcasting it; registrations signed
    at n+1 and n+2 wait behind the gap until a self-transfer fills n."""
    deploy()
    web3 = web3_for(HARDHAT)
    with transaction.atomic():  # the reservation the dead process committed
        lost = next_nonce(chain=chain(HARDHAT), address=SIGNER, node_pending=0)
    first = registration_request(content=content_with_source(), caip2=HARDHAT)
    second = registration_request(content=content_with_source(), caip2=HARDHAT)
    before = healed("gap_filled")
    rpc(hardhat, "evm_setAutomine", [False])
    try:
        advance(first.pk, django_capture_on_commit_callbacks)  # n+1: queued behind the gap
        settings.CHAIN_NONCE_GRACE_SECONDS = 0  # the gap has outlived any broadcast
        advance(second.pk, django_capture_on_commit_callbacks)  # heals: n filled, then n+2
        rpc(hardhat, "evm_mine")
    finally:
        rpc(hardhat, "evm_setAutomine", [True])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.nonce, second.nonce) == (lost + 1, lost + 2)
    assert healed("gap_filled") == before + 1
    assert web3.eth.get_transaction_count(SIGNER, "latest") == lost + 3
    filler = web3.eth.get_block("latest", full_transactions=True)["transactions"][0]
    assert (filler["nonce"], filler["to"], filler["value"]) == (lost, SIGNER, 0)
    for registration in (first, second):
        advance(registration.pk, django_capture_on_commit_callbacks)
        registration.refresh_from_db()
        assert registration.status == RegistrationStatus.CONFIRMED


def test_the_key_used_elsewhere_moves_the_row_up(hardhat):
    deploy()
    web3 = web3_for(HARDHAT)
    for _ in range(2):  # another tool signs with the same key
        send_signed(web3, HARDHAT_KEYS[0], {"to": SIGNER, "value": 0})
    before = healed("nonce_too_low")
    deploy()
    assert SignerNonce.objects.get(chain=HARDHAT, address=SIGNER).next_nonce == 4
    assert healed("nonce_too_low") == before + 1


def test_a_young_gap_is_left_alone(hardhat):
    """A reservation younger than CHAIN_NONCE_GRACE_SECONDS may be on its way to the node:
    the row keeps it (no heal), and the next nonce is the one after it."""
    deploy()
    with transaction.atomic():
        reserved = next_nonce(chain=chain(HARDHAT), address=SIGNER, node_pending=0)
    from apps.chain.nonces import nonce_reconcile

    before = healed("nonce_too_high")
    pending = nonce_reconcile(
        web3=web3_for(HARDHAT), chain=chain(HARDHAT), account=Account.from_key(HARDHAT_KEYS[0])
    )
    assert pending == reserved
    assert SignerNonce.objects.get(chain=HARDHAT, address=SIGNER).next_nonce == reserved + 1
    assert healed("nonce_too_high") == before


def test_a_registration_refused_for_its_nonce_fills_the_gap_and_is_sent_again(
    hardhat, django_capture_on_commit_callbacks
):
    """The node says "nonce too high" at broadcast (a young gap below, from a reservation that
    never reached it): the gap is filled at once and the registration sent again."""
    deploy()
    with transaction.atomic():
        lost = next_nonce(chain=chain(HARDHAT), address=SIGNER, node_pending=0)
    before = healed("gap_filled")
    registration = registration_request(content=content_with_source(), caip2=HARDHAT)
    advance(registration.pk, django_capture_on_commit_callbacks)
    advance(registration.pk, django_capture_on_commit_callbacks)
    registration.refresh_from_db()
    assert (registration.status, registration.nonce) == (RegistrationStatus.CONFIRMED, lost + 1)
    assert healed("gap_filled") == before + 1


def test_the_counter_is_exported_at_zero_for_each_configured_chain(client, settings):
    """Its alert takes increase(): the series must exist before the first heal."""
    settings.CHAIN_RPC_URLS = {"eip155:10": "http://127.0.0.1:9/", "solana:mainnet": "http://x/"}
    page = client.get("/metrics").content.decode()
    for reason in ("nonce_too_low", "nonce_too_high", "gap_filled"):
        assert (
            f'streamgate_signer_nonce_reconciled_total{{chain="eip155:10",reason="{reason}"}}'
            in page
        )
    assert 'streamgate_signer_nonce_reconciled_total{chain="solana:mainnet"' not in page
