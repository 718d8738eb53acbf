"""The indexer's checkpoint, the cursor row: who may index a chain, and how a batch is kept.

- One indexer per chain at a time: a lease on the cursor row, like an upload's write lease.
- A batch's block headers are read after its logs and checked against them and against the
  block we stored before it: a reorganisation between our calls is caught, not stored.
- Each batch is stored in one transaction: its events (upserted, unique on chain + tx hash +
  log index, so a replay changes nothing), the hashes of its blocks, and the cursor.
- Every NFT transfer seen sends ``nft_transfer_seen`` after commit (the access app drops its
  cached ownership answers for both accounts); every purchase or grant in the registry sends
  ``registry_access_changed`` for the buyer; an ``OffersSet`` makes that set of offers live.
"""

import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from web3 import Web3

from apps.chain.log_reader import Batch
from apps.chain.models import (
    ChainEvent,
    IndexedBlock,
    IndexerCursor,
    Registration,
    RegistrationStatus,
)
from apps.chain.signals import nft_transfer_seen, registry_access_changed

LEASE_SECONDS = 60
KEEP_BLOCK_HASHES = 512  # how far back a reorganisation can be traced


class IndexerBusy(Exception):
    """Another indexer holds this chain's lease."""


class BatchStale(Exception):
    """The chain moved under the batch being read (a reorganisation mid-batch): read again."""


# --- the lease ---------------------------------------------------------------------------------


def acquire(caip2: str) -> str:
    """Take the lease on ``caip2``'s cursor row (creating the row); returns its token."""
    IndexerCursor.objects.get_or_create(chain=caip2)
    token = secrets.token_hex(16)
    now = timezone.now()
    taken = (
        IndexerCursor.objects.filter(chain=caip2)
        .filter(Q(lock_token="") | Q(lock_expires_at__lt=now))
        .update(lock_token=token, lock_expires_at=now + timedelta(seconds=LEASE_SECONDS))
    )
    if not taken:
        raise IndexerBusy(f"another indexer is working on {caip2}")
    return token


def renew(caip2: str, token: str, **fields: Any) -> None:
    """Extend the lease, writing ``fields`` to the cursor row; IndexerBusy if it was lost."""
    renewed = IndexerCursor.objects.filter(chain=caip2, lock_token=token).update(
        lock_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS), **fields
    )
    if not renewed:
        raise IndexerBusy(f"lost the indexer lease of {caip2}")


def release(caip2: str, token: str) -> None:
    """Give the lease back (nothing happens if another indexer holds it now)."""
    IndexerCursor.objects.filter(chain=caip2, lock_token=token).update(
        lock_token="", lock_expires_at=None
    )


# --- storing a batch ---------------------------------------------------------------------------


def verify(web3: Web3, caip2: str, batch: Batch, start: int, end: int) -> None:
    """Read the headers of the batch's blocks after its logs, and check they agree: the logs'
    block hashes, and the first block's parent with the hash we stored for the one before.
    A reorganisation between our calls shows up here instead of being stored."""
    for number in sorted({*batch.blocks, end}):
        header = web3.eth.get_block(number)
        block_hash, parent_hash = header["hash"].to_0x_hex(), header["parentHash"].to_0x_hex()
        logged = batch.blocks.get(number)
        if logged and logged[0] != block_hash:
            raise BatchStale(f"block {number} changed during the batch")
        batch.blocks[number] = (block_hash, parent_hash)
    previous = IndexedBlock.objects.filter(chain=caip2, number=start - 1).first()
    if previous is not None:
        first = web3.eth.get_block(start)["parentHash"].to_0x_hex()
        if first != previous.hash:
            raise BatchStale(f"block {start} no longer follows the block we indexed")


def store(caip2: str, token: str, batch: Batch, end: int) -> None:
    """The batch's events, its blocks' hashes and the cursor, all or nothing."""
    with transaction.atomic():
        renew(caip2, token, indexed_to=end)
        # A log seen again (a replay, or the same transaction re-mined after a reorg) is
        # updated in place: its block is the one the chain has now.
        ChainEvent.objects.bulk_create(
            batch.events,
            update_conflicts=True,
            unique_fields=["chain", "tx_hash", "log_index"],
            update_fields=["block_number", "block_hash", "address", "name", "args"],
        )
        for number, (block_hash, parent_hash) in batch.blocks.items():
            IndexedBlock.objects.update_or_create(
                chain=caip2,
                number=number,
                defaults={"hash": block_hash, "parent_hash": parent_hash},
            )
        _trim_block_hashes(caip2)
        _confirm_registrations(caip2, batch.events)
        # Imported here: they import the tasks, which import this module.
        from apps.chain.offers import offer_sets_seen
        from apps.chain.payouts import payouts_seen
        from apps.chain.webhooks import purchases_announce

        offer_sets_seen(caip2, batch.events)
        payouts_seen(caip2, batch.events)
        purchases_announce(caip2=caip2, events=batch.events)
        transfers = {contract: sorted(accounts) for contract, accounts in batch.transfers.items()}
        if transfers:
            transaction.on_commit(lambda: announce(caip2, transfers))
        accesses = sorted(batch.accesses)
        if accesses:
            transaction.on_commit(lambda: announce_access(caip2, accesses))


def _trim_block_hashes(caip2: str) -> None:
    """Keep the newest KEEP_BLOCK_HASHES hashes (at least one per batch), whatever their
    spacing: while catching up, batches are thousands of blocks apart."""
    cutoff = (
        IndexedBlock.objects.filter(chain=caip2)
        .order_by("-number")
        .values_list("number", flat=True)[KEEP_BLOCK_HASHES : KEEP_BLOCK_HASHES + 1]
    )
    if cutoff:
        IndexedBlock.objects.filter(chain=caip2, number__lte=cutoff[0]).delete()


def _confirm_registrations(caip2: str, events: list[ChainEvent]) -> None:
    """A registration whose transaction the indexer saw at a safe depth is confirmed, even if
    the task watching it died."""
    from apps.chain.webhooks import registration_confirmed_announce

    for event in events:
        if event.name == "ContentRegistered":
            submitted = Registration.objects.filter(
                chain=caip2, tx_hash=event.tx_hash, status=RegistrationStatus.SUBMITTED
            )
            confirmed = list(submitted.values_list("pk", flat=True))
            submitted.update(
                status=RegistrationStatus.CONFIRMED,
                block_number=event.block_number,
                block_hash=event.block_hash,
                confirmed_at=timezone.now(),
            )
            for registration_id in confirmed:
                registration_confirmed_announce(registration_id=registration_id)


def announce_access(caip2: str, accounts: list[str]) -> None:
    """Send ``registry_access_changed`` for the accounts (call after commit)."""
    registry_access_changed.send(sender=IndexedBlock, chain=caip2, accounts=accounts)


def announce(caip2: str, transfers: dict[str, list[str]]) -> None:
    """Send ``nft_transfer_seen`` for each contract's accounts (call after commit)."""
    for contract, accounts in transfers.items():
        nft_transfer_seen.send(
            sender=IndexedBlock, chain=caip2, contract=contract, accounts=accounts
        )
