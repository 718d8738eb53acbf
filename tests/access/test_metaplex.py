"""Metaplex collection gates against a local Solana JSON-RPC server whose accounts are built in
the real layouts (SPL token accounts, Borsh metadata); our code uses solana-py over HTTP."""

import time

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from apps.access.gates import Condition, Wallet
from apps.access.metaplex import MetadataInvalid, metadata_address, metadata_parse
from apps.access.ownership.fetch import answer_fetch
from apps.access.playback import access_decide
from apps.content.models import ContentStatus
from tests.factories import ContentFactory, UserFactory, WalletFactory
from tests.support.solana_rpc import (
    METADATA_PROGRAM_ID,
    SolanaLedger,
    metadata_data,
    metadata_pda,
    solana_rpc_server,
)

CHAIN = "solana:mainnet"


@pytest.fixture
def ledger():
    return SolanaLedger()


@pytest.fixture
def node(ledger, settings):
    with solana_rpc_server(ledger) as url:
        settings.CHAIN_RPC_URLS = {CHAIN: url}
        # Generous: a loopback connect on a loaded 2-core machine once took over a second. The
        # timeout test below sets its own.
        settings.GATE_RPC_TIMEOUT = 5.0
        yield url


@pytest.fixture
def collection() -> Pubkey:
    return Keypair().pubkey()


def held(owner: Pubkey, collection: Pubkey) -> bool | None:
    condition = Condition("metaplex", CHAIN, str(collection))
    return answer_fetch(condition, [Wallet("solana", str(owner))]).held


def test_a_verified_member_holds(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=Keypair().pubkey())  # another collection's NFT first
    ledger.add_nft(owner, collection=collection)
    assert held(owner, collection) is True
    assert ledger.calls.count("getTokenAccountsByOwner") == 2  # Token and Token-2022


def test_an_unverified_collection_does_not_count(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection, verified=False)
    assert held(owner, collection) is False


def test_a_wrong_collection_does_not_count(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=Keypair().pubkey())
    ledger.add_nft(owner, collection=None)
    assert held(owner, collection) is False


def test_metadata_written_by_another_program_does_not_count(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection, metadata_owner=Keypair().pubkey())
    assert held(owner, collection) is False


def test_a_token_2022_holder_holds(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection, token_program="token2022")
    assert held(owner, collection) is True


def test_amount_zero_and_fungible_tokens_do_not_count(ledger, node, collection):
    owner, buyer = Keypair().pubkey(), Keypair().pubkey()
    mint = ledger.add_nft(owner, collection=collection)
    ledger.transfer(mint, owner, buyer)  # the seller keeps an empty token account
    assert held(owner, collection) is False
    assert held(buyer, collection) is True
    rich = Keypair().pubkey()
    ledger.add_nft(rich, collection=collection, amount=1000, decimals=6)
    assert held(rich, collection) is False


def test_no_metadata_and_wrong_key_do_not_count(ledger, node, collection):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection, with_metadata=False)
    ledger.add_nft(owner, collection=collection, key=6)  # a MasterEdition-like account
    assert held(owner, collection) is False


def test_metadata_that_names_another_mint_does_not_count(ledger, node, collection):
    """Metadata copied from a genuine member to the PDA of a worthless mint."""
    owner = Keypair().pubkey()
    genuine = ledger.add_nft(Keypair().pubkey(), collection=collection)
    fake = ledger.add_nft(owner, collection=None)
    copied = ledger.accounts[metadata_pda(genuine)].data
    ledger.set_account(metadata_pda(fake), bytes(copied), owner=METADATA_PROGRAM_ID)
    assert held(owner, collection) is False


def test_a_node_error_or_timeout_is_unknown_never_held(ledger, node, collection, settings):
    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection)
    ledger.fail_with = {"code": -32603, "message": "Internal error"}
    assert held(owner, collection) is None
    ledger.fail_with = 500
    assert held(owner, collection) is None
    ledger.fail_with = {"code": -32000, "message": "unknown to solders"}  # returned, not raised
    assert held(owner, collection) is None
    ledger.fail_with = None
    ledger.delay_seconds = 2.0
    settings.GATE_RPC_TIMEOUT = 0.3
    assert held(owner, collection) is None


def test_a_gate_on_a_collection_through_the_decision(ledger, node, collection, db):
    member, stranger = Keypair().pubkey(), Keypair().pubkey()
    ledger.add_nft(member, collection=collection)
    gate = {"metaplex": {"chain": CHAIN, "collection": str(collection)}}
    content = ContentFactory(status=ContentStatus.READY, gate=gate)
    users = {}
    for name, key in (("member", member), ("stranger", stranger)):
        users[name] = UserFactory()
        WalletFactory(user=users[name], namespace="solana", chain=CHAIN, address=str(key))
    assert access_decide(user=users["member"], content=content).allowed is True
    assert access_decide(user=users["stranger"], content=content).reason == "gate_denied"
    evm_only = UserFactory()
    WalletFactory(user=evm_only)
    assert access_decide(user=evm_only, content=content).reason == "gate_denied"


def test_the_parser_reads_current_older_and_padded_layouts(collection):
    mint, authority = Keypair().pubkey(), Keypair().pubkey()
    current = metadata_data(
        mint=mint,
        update_authority=authority,
        name="Pass #1",
        symbol="PASS",
        uri="https://x",
        collection=collection,
    )
    parsed = metadata_parse(current)
    assert (parsed.mint, parsed.name, parsed.collection, parsed.collection_verified) == (
        mint,
        "Pass #1",
        collection,
        True,
    )
    older = metadata_data(
        mint=mint,
        update_authority=authority,
        name="Old",
        symbol="OLD",
        uri="https://x",
        collection=None,
        truncated=True,
    )
    assert metadata_parse(older).collection is None
    assert metadata_parse(older + bytes(300)).collection is None
    with pytest.raises(MetadataInvalid):
        metadata_parse(current[:40])
    with pytest.raises(MetadataInvalid):
        metadata_parse(b"\x06" + current[1:])
    assert metadata_address(mint) == metadata_pda(mint)


def test_a_failing_provider_gives_way_to_the_next_and_is_used_again(
    ledger, node, collection, settings
):
    from prometheus_client import REGISTRY

    from apps.chain.providers import provider_label
    from tests.support.rpc_faults import FaultyProvider

    owner = Keypair().pubkey()
    ledger.add_nft(owner, collection=collection)
    with FaultyProvider(node) as first:
        settings.CHAIN_RPC_URLS = {CHAIN: [first.url, node]}
        settings.CHAIN_RPC_COOLDOWN_SECONDS = 0.3

        def failed() -> float:
            labels = {"chain": CHAIN, "provider": provider_label(first.url), "outcome": "error"}
            return REGISTRY.get_sample_value("streamgate_rpc_requests_total", labels) or 0.0

        first.mode = "error"  # HTTP 500
        before = failed()
        assert held(owner, collection) is True
        assert held(owner, collection) is True  # in cooldown: not asked again
        assert failed() == before + 1
        first.mode = "ok"
        time.sleep(0.35)  # the cooldown runs out: the recovered provider is asked again
        assert held(owner, collection) is True
        assert "getTokenAccountsByOwner" in first.calls
