"""Contract wallets (ERC-1271) sign in on their own chain, verified on a real EVM (py-evm)."""

import pytest

from apps.access.models import WalletAccount, WalletKind
from apps.access.selectors import viewer_wallets
from tests.access.conftest import ALICE, BOB, sign, siwe_text
from tests.support.evm import deploy_artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def wallet(tester_chain):
    """A one-owner contract wallet whose owner key is ALICE's."""
    return deploy_artifact(tester_chain.web3, "TestWallet1271", ALICE.address)


def test_a_contract_wallet_signs_in_by_erc1271(signin_client, tester_chain, wallet):
    chain_id = tester_chain.web3.eth.chain_id
    text = siwe_text(wallet.address, signin_client.nonce(), chain_id=chain_id)
    response = signin_client.siwe(text, sign(text, ALICE))
    assert response.status_code == 200, response.content
    assert response.json()["account"] == f"eip155:{chain_id}:{wallet.address}"
    record = WalletAccount.objects.get()
    assert (record.kind, record.chain) == (WalletKind.CONTRACT, tester_chain.caip2)
    # A contract wallet speaks for its address on its own chain only.
    (seen,) = viewer_wallets(record.user)
    assert seen.holds_on(tester_chain.caip2)
    assert not seen.holds_on("eip155:1")


def test_a_signature_the_wallet_rejects_is_refused(signin_client, tester_chain, wallet):
    text = siwe_text(wallet.address, signin_client.nonce(), chain_id=tester_chain.web3.eth.chain_id)
    response = signin_client.siwe(text, sign(text, BOB))
    assert response.status_code == 401
    assert response.json()["reason"] == "bad_signature"
    assert not WalletAccount.objects.exists()


def test_a_contract_wallet_on_a_chain_without_rpc_cannot_sign_in(signin_client, wallet, settings):
    # Chain 1 is allowed for sign-in but StreamGate has no RPC for it: ERC-1271 cannot be asked.
    text = siwe_text(wallet.address, signin_client.nonce(), chain_id=1)
    response = signin_client.siwe(text, sign(text, ALICE))
    assert response.status_code == 401
    assert response.json()["reason"] == "bad_signature"


def test_an_unreachable_chain_is_a_503_not_a_refusal(signin_client, settings):
    settings.CHAIN_RPC_URLS = {"eip155:10": "http://127.0.0.1:9/"}  # nothing listens there
    settings.GATE_RPC_TIMEOUT = 0.5
    text = siwe_text(BOB.address, signin_client.nonce(), chain_id=10)
    response = signin_client.siwe(text, sign(text, ALICE))
    assert response.status_code == 503
    assert response.json()["reason"] == "chain_unavailable"
    assert response["Retry-After"]


def test_a_key_held_account_signs_in_while_its_chain_is_unreachable(signin_client, settings):
    settings.CHAIN_RPC_URLS = {"eip155:10": "http://127.0.0.1:9/"}
    text = siwe_text(ALICE.address, signin_client.nonce(), chain_id=10)
    assert signin_client.siwe(text, sign(text, ALICE)).status_code == 200
