"""RPC failover with several providers per chain (CHAIN_RPC_URLS lists), against a real node
(npx hardhat node) behind two providers that can fail or lag (tests/support/rpc_faults.py):
gate decisions through the playback API and the indexer go on with no 503 while the preferred
provider errs, resets, times out and lags, and use it again once it has recovered; the indexer
never reads logs from a provider that has not reached the blocks it asks about."""

import io
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from eth_account import Account
from prometheus_client import REGISTRY
from requests.exceptions import HTTPError
from web3 import Web3

from apps.chain.chains import contract_for, web3_for
from apps.chain.indexer import index_chain
from apps.chain.models import ChainContract, ChainEvent, ContractKind
from apps.chain.providers import ProvidersBehind, provider_label
from tests.access.conftest import published
from tests.factories import UserFactory, WalletFactory
from tests.support.jsonrpc import HARDHAT_KEYS, rpc, send_signed
from tests.support.rpc_faults import FaultyProvider

HARDHAT = "eip155:31337"
HOLDER = Account.from_key(HARDHAT_KEYS[1]).address
pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(node, settings):
    """Two providers in front of the node, ``first`` preferred; a fresh chain."""
    rpc(node, "hardhat_reset")
    cache.delete_pattern("own:*")
    with FaultyProvider(node) as first, FaultyProvider(node) as second:
        settings.CHAIN_RPC_URLS = {HARDHAT: [first.url, second.url]}
        settings.CHAIN_SIGNER_KEY = HARDHAT_KEYS[0]
        settings.CHAIN_OVERRIDES = {}
        settings.CHAIN_RPC_TIMEOUT = settings.GATE_RPC_TIMEOUT = 1.0
        settings.CHAIN_RPC_COOLDOWN_SECONDS = 0.3
        settings.CHAIN_RPC_HEAD_MAX_AGE_SECONDS = 0  # heads asked before each call: no waiting
        settings.CHAIN_RPC_MAX_LAG_BLOCKS = 5
        yield first, second


def requests_of(provider: FaultyProvider, outcome: str) -> float:
    labels = {"chain": HARDHAT, "provider": provider_label(provider.url), "outcome": outcome}
    return REGISTRY.get_sample_value("streamgate_rpc_requests_total", labels) or 0.0


def nft() -> object:
    call_command("deploy_contracts", "--chain", HARDHAT, "--with-test-tokens", stdout=io.StringIO())
    record = ChainContract.objects.get(chain=HARDHAT, kind=ContractKind.NFT721)
    return contract_for(web3_for(HARDHAT), "TestNFT721", record.address)


def mint(token, to: str, node: str) -> None:
    """Mint as a wallet would, straight to the node (not through the providers under test)."""
    direct = Web3(Web3.HTTPProvider(node))
    data = token.functions.mint(to)._encode_transaction_data()
    send_signed(direct, HARDHAT_KEYS[0], {"to": token.address, "data": data})


def rest(seconds: float = 0.35) -> None:
    """Let a failed provider's cooldown (CHAIN_RPC_COOLDOWN_SECONDS = 0.3) run out."""
    time.sleep(seconds)


def test_gate_decisions_go_on_while_the_preferred_provider_fails_lags_and_recovers(
    providers, api_client, media_root
):
    first, second = providers
    token = nft()
    mint(token, HOLDER, first.upstream)
    viewer = UserFactory()
    WalletFactory(user=viewer, address=HOLDER)
    gate = {"erc721": {"chain": HARDHAT, "contract": token.address, "token_id": None}}
    content = published(media_root, gate=gate).content
    api_client.force_authenticate(viewer)

    def decision() -> int:
        cache.delete_pattern("own:*")  # ask the chain each time
        return api_client.post(f"/api/v1/contents/{content.id}/playback/").status_code

    for fault, outcome in (("error", "error"), ("reset", "error"), ("timeout", "timeout")):
        first.mode = fault
        failed, served = requests_of(first, outcome), len(second.calls)
        assert decision() == 200, fault
        assert requests_of(first, outcome) >= failed + 1, fault
        assert len(second.calls) > served, fault
        first.mode = "ok"
        rest()

    # Lagging by 20 blocks: the mint is newer than its head, so it would answer "not held".
    for _ in range(20):
        rpc(first.upstream, "evm_mine")
    first.lag = 20
    calls = first.calls.count("eth_call")
    assert decision() == 200
    assert first.calls.count("eth_call") == calls  # asked for its head only

    first.lag = 0  # recovered: preferred again
    assert decision() == 200
    assert first.calls.count("eth_call") > calls


def test_the_indexer_reads_logs_only_from_providers_that_have_the_blocks(providers):
    first, second = providers
    token = nft()
    index_chain(caip2=HARDHAT)
    first.lag = 3  # within CHAIN_RPC_MAX_LAG_BLOCKS: still used, but not for the newest blocks
    for _ in range(4):
        mint(token, HOLDER, first.upstream)
    report = index_chain(caip2=HARDHAT)
    assert report.indexed_to == web3_for(HARDHAT).eth.block_number
    assert ChainEvent.objects.filter(chain=HARDHAT, name="Transfer").count() == 4
    assert first.beyond_head == []  # never asked for logs it does not have
    assert second.calls.count("eth_getLogs") >= 1

    first.mode = "error"  # and indexing goes on while the preferred provider fails
    mint(token, HOLDER, first.upstream)
    assert index_chain(caip2=HARDHAT).events == 1
    first.mode, first.lag = "ok", 0
    rest()
    mint(token, HOLDER, first.upstream)
    logs = first.calls.count("eth_getLogs")
    assert index_chain(caip2=HARDHAT).events == 1
    assert first.calls.count("eth_getLogs") > logs  # the recovered provider is used again
    assert ChainEvent.objects.filter(chain=HARDHAT, name="Transfer").count() == 6


def test_a_failed_provider_is_left_alone_during_its_cooldown(providers, settings):
    first, second = providers
    settings.CHAIN_RPC_COOLDOWN_SECONDS = 30
    web3 = web3_for(HARDHAT)
    first.mode = "reset"
    failed, answered = requests_of(first, "error"), requests_of(second, "ok")
    for _ in range(5):
        assert web3.eth.get_balance(HOLDER) > 0
    assert requests_of(first, "error") == failed + 1  # once, then not again for a while
    assert requests_of(second, "ok") >= answered + 5
    first.mode = "ok"
    calls = len(first.calls)
    web3.eth.get_balance(HOLDER)
    assert len(first.calls) == calls  # still resting, though it would answer now


def test_a_block_no_provider_has_reached_is_a_transient_error(providers):
    first, second = providers
    web3 = web3_for(HARDHAT)
    head = web3.eth.block_number
    with pytest.raises(ProvidersBehind, match=f"block {head + 50}"):
        web3.eth.get_block(head + 50)
    first.lag = second.lag = 0
    assert web3.eth.get_block(head)["number"] == head


def test_every_provider_failing_is_the_last_ones_error(providers):
    first, second = providers
    web3 = web3_for(HARDHAT)
    first.mode = second.mode = "error"
    with pytest.raises(HTTPError):
        web3.eth.get_balance(HOLDER)
    assert requests_of(second, "error") >= 1


def test_a_provider_of_another_chain_is_refused(providers, settings, node):
    from apps.chain.chains import ChainNotConfigured

    settings.CHAIN_RPC_URLS = {"eip155:1": [providers[0].url]}
    with pytest.raises(ChainNotConfigured, match="serves chain id 31337, not 1"):
        web3_for("eip155:1")
