"""The indexer on a real EVM (py-evm): events, transfers, reorganisations, confirmations."""

import pytest

from apps.chain.checkpoint import IndexerBusy, acquire
from apps.chain.indexer import index_chain
from apps.chain.models import ChainEvent, IndexedBlock, IndexerCursor
from apps.chain.signals import nft_transfer_seen
from tests.factories import registrable_content
from tests.support.evm import send

pytestmark = pytest.mark.django_db

CONTENT = b"\x00" * 16 + bytes.fromhex("11" * 16)
GATE = b"\x00" * 32


@pytest.fixture
def transfers():
    seen = []

    def listener(sender, chain, contract, accounts, **kwargs):
        seen.append((chain, contract, tuple(accounts)))

    nft_transfer_seen.connect(listener)
    yield seen
    nft_transfer_seen.disconnect(listener)


def events(**filters):
    return list(
        ChainEvent.objects.filter(**filters)
        .order_by("block_number", "log_index")
        .values_list("name", flat=True)
    )


def test_indexes_registrations_and_transfers(
    deployed, tester_chain, transfers, django_capture_on_commit_callbacks
):
    owner, creator, holder, other = tester_chain.accounts[:4]
    send(deployed.registry.functions.register(CONTENT, creator, "bafkcid", 7, GATE), owner)
    send(deployed.registry.functions.grantAccess(CONTENT, holder, 2**40), creator)
    send(deployed.nft721.functions.mint(holder), owner)
    send(deployed.nft721.functions.transferFrom(holder, other, 1), holder)
    send(deployed.nft1155.functions.mint(holder, 3, 2), owner)
    send(deployed.nft1155.functions.mintBatch(other, [4, 5], [1, 1]), owner)

    with django_capture_on_commit_callbacks(execute=True):
        report = index_chain(caip2=tester_chain.caip2)

    assert report.indexed_to == tester_chain.web3.eth.block_number
    assert events() == [
        "ContentRegistered",
        "AccessGranted",
        "Transfer",
        "Transfer",
        "TransferSingle",
        "TransferBatch",
    ]
    registered = ChainEvent.objects.get(name="ContentRegistered")
    assert registered.args["cid"] == "bafkcid"
    assert registered.args["creator"] == creator
    assert registered.args["contentId"] == "0x" + CONTENT.hex()
    batch = ChainEvent.objects.get(name="TransferBatch")
    assert batch.args["ids"] == [4, 5]
    moved = {(contract, accounts) for _, contract, accounts in transfers}
    assert (deployed.nft721.address, tuple(sorted([holder, other]))) in moved
    assert (deployed.nft1155.address, tuple(sorted([holder, other]))) in moved
    assert IndexedBlock.objects.filter(number=report.indexed_to).exists()


def test_replay_is_idempotent(deployed, tester_chain):
    send(
        deployed.registry.functions.register(CONTENT, tester_chain.accounts[1], "bafkcid", 0, GATE),
        tester_chain.accounts[0],
    )
    index_chain(caip2=tester_chain.caip2)
    first = list(ChainEvent.objects.values_list("tx_hash", "log_index"))
    index_chain(caip2=tester_chain.caip2, from_block=0)  # everything again
    index_chain(caip2=tester_chain.caip2)
    assert list(ChainEvent.objects.values_list("tx_hash", "log_index")) == first


def test_confirmations_are_respected(deployed, tester_chain, settings):
    settings.CHAIN_OVERRIDES = {tester_chain.caip2: {"confirmations": 3}}
    send(
        deployed.registry.functions.register(CONTENT, tester_chain.accounts[1], "bafkcid", 0, GATE),
        tester_chain.accounts[0],
    )
    head = tester_chain.web3.eth.block_number
    report = index_chain(caip2=tester_chain.caip2)
    assert report.indexed_to == head - 3
    assert events() == []  # the registration is not 3 blocks deep yet
    tester_chain.mine(3)
    index_chain(caip2=tester_chain.caip2)
    assert events() == ["ContentRegistered"]


def test_a_reorganisation_removes_orphans_and_indexes_the_new_branch(
    deployed, tester_chain, transfers, django_capture_on_commit_callbacks
):
    owner, creator, holder, other = tester_chain.accounts[:4]
    index_chain(caip2=tester_chain.caip2)
    fork_point = tester_chain.tester.take_snapshot()
    base = tester_chain.web3.eth.block_number

    # Branch A: a registration and a mint, indexed.
    send(deployed.registry.functions.register(CONTENT, creator, "bafk-branch-a", 0, GATE), owner)
    send(deployed.nft721.functions.mint(holder), owner)
    tester_chain.mine(1)
    index_chain(caip2=tester_chain.caip2)
    assert events() == ["ContentRegistered", "Transfer"]
    orphaned_height = tester_chain.web3.eth.block_number

    # The chain reorganises: branch B replaces A from the fork point, longer than A.
    tester_chain.tester.revert_to_snapshot(fork_point)
    send(deployed.nft721.functions.mint(other), owner)
    tester_chain.mine(4)
    assert tester_chain.web3.eth.block_number > orphaned_height
    transfers.clear()
    with django_capture_on_commit_callbacks(execute=True):
        report = index_chain(caip2=tester_chain.caip2)

    assert report.reorgs == 1
    assert report.rolled_back == 2
    assert events() == ["Transfer"]
    (mint,) = ChainEvent.objects.all()
    assert mint.args["to"] == other
    assert mint.block_number == base + 1
    assert mint.block_hash == tester_chain.web3.eth.get_block(base + 1)["hash"].to_0x_hex()
    # Ownership answers for accounts touched on the orphaned branch are dropped too.
    assert any(holder in accounts for _, _, accounts in transfers)
    stored = IndexedBlock.objects.get(number=report.indexed_to)
    assert stored.hash == tester_chain.web3.eth.get_block(report.indexed_to)["hash"].to_0x_hex()


def test_one_indexer_per_chain(deployed, tester_chain):
    acquire(tester_chain.caip2)  # another process holds the lease
    with pytest.raises(IndexerBusy):
        index_chain(caip2=tester_chain.caip2)


def test_lag_is_exposed(deployed, tester_chain, client):
    tester_chain.mine(5)
    index_chain(caip2=tester_chain.caip2)
    text = client.get("/metrics").content.decode()
    line = next(
        row
        for row in text.splitlines()
        if row.startswith("streamgate_chain_indexer_lag_blocks{") and tester_chain.caip2 in row
    )
    assert line.endswith(" 0.0")
    assert IndexerCursor.objects.get(chain=tester_chain.caip2).indexed_to >= 5


def test_the_finalized_tag_is_used_where_the_chain_has_one(deployed, tester_chain, settings):
    settings.CHAIN_OVERRIDES = {tester_chain.caip2: {"finalized_tag": True, "confirmations": 100}}
    send(deployed.nft721.functions.mint(tester_chain.accounts[2]), tester_chain.accounts[0])
    report = index_chain(caip2=tester_chain.caip2)
    # eth-tester finalises every block; head - 100 would have indexed nothing.
    assert report.indexed_to == tester_chain.web3.eth.get_block("finalized")["number"]
    assert events() == ["Transfer"]


def test_a_reorg_deeper_than_the_kept_hashes_stops_instead_of_wiping(deployed, tester_chain):
    from apps.chain.reorgs import DeepReorg

    send(deployed.nft721.functions.mint(tester_chain.accounts[2]), tester_chain.accounts[0])
    index_chain(caip2=tester_chain.caip2)
    IndexedBlock.objects.update(hash="0x" + "ee" * 32)  # no kept hash matches the chain now
    with pytest.raises(DeepReorg, match="--from-block"):
        index_chain(caip2=tester_chain.caip2)
    assert events() == ["Transfer"]  # nothing was thrown away


def test_a_reorg_sends_confirmed_registrations_back_to_watching(
    deployed, tester_chain, media_root, django_capture_on_commit_callbacks
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from apps.chain.models import Registration, RegistrationStatus
    from apps.chain.services import registration_advance, registration_request
    from apps.chain.tasks import chain_registration_advance

    content = registrable_content()
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(b"v"))
    content.save()
    index_chain(caip2=tester_chain.caip2)
    fork = tester_chain.tester.take_snapshot()
    registration = registration_request(content=content, caip2=tester_chain.caip2)
    with django_capture_on_commit_callbacks(execute=False):
        registration_advance(registration_id=registration.pk)
        registration_advance(registration_id=registration.pk)
    assert Registration.objects.get(pk=registration.pk).status == RegistrationStatus.CONFIRMED
    index_chain(caip2=tester_chain.caip2)
    assert events() == ["ContentRegistered"]

    tester_chain.tester.revert_to_snapshot(fork)  # the registration's block is orphaned
    tester_chain.mine(5)
    with django_capture_on_commit_callbacks() as callbacks:
        index_chain(caip2=tester_chain.caip2)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.SUBMITTED
    assert registration.block_number is None
    assert [
        c.args for c in callbacks if getattr(c, "task", None) is chain_registration_advance
    ] == [(registration.pk,)]
    assert events() == []


@pytest.mark.parametrize(
    ("message", "code", "refused"),
    [
        ("query returned more than 10000 results", -32005, True),
        (
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
            "range",
            -32602,
            True,
        ),
        ("exceeded its compute units per second capacity", 429, False),
        ("Too Many Requests", -32005, False),
        ("execution reverted", 3, False),
    ],
)
def test_what_counts_as_a_refused_range(message, code, refused):
    from web3.exceptions import Web3RPCError

    from apps.chain import log_reader

    error = Web3RPCError(message, rpc_response={"error": {"code": code, "message": message}})
    assert log_reader.refused(error) is refused
