"""Reorganisations: finding where our index and the chain part, and undoing what lies above.

Before every batch the hash of the last indexed block is compared with the chain's: if it
changed, the chain reorganised; stored blocks are walked back to the common ancestor, every
event above it is deleted in one transaction, and indexing resumes from there. Registrations
confirmed in orphaned blocks are watched again, and accounts whose transfers were orphaned have
their cached ownership answers dropped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from web3 import Web3
from web3.exceptions import BlockNotFound

from apps.chain import checkpoint, tasks
from apps.chain.checkpoint import KEEP_BLOCK_HASHES
from apps.chain.models import ChainEvent, IndexedBlock, Registration, RegistrationStatus
from streamgate.celery import enqueue_on_commit

if TYPE_CHECKING:
    from apps.chain.indexer import IndexReport

logger = logging.getLogger(__name__)


class DeepReorg(Exception):
    """The chain diverged below every block hash we kept: re-index with --from-block."""


def check_reorg(web3: Web3, caip2: str, token: str, indexed_to: int, report: IndexReport) -> int:
    """The block to resume after: ``indexed_to``, or the common ancestor after a reorg."""
    stored = IndexedBlock.objects.filter(chain=caip2, number__lte=indexed_to).order_by("-number")
    latest = stored.first()
    if latest is None or _hash_at(web3, latest.number) == latest.hash:
        return indexed_to
    ancestor = None
    for checked, block in enumerate(stored[1:KEEP_BLOCK_HASHES], start=1):
        if checked % 50 == 0:
            checkpoint.renew(caip2, token)  # a long walk back must not outlive the lease
        if _hash_at(web3, block.number) == block.hash:
            ancestor = block.number
            break
    if ancestor is None:
        logger.error(
            "chain reorganised below every kept block hash",
            extra={"chain": caip2, "indexed_to": indexed_to},
        )
        raise DeepReorg(
            f"{caip2} reorganised below the {KEEP_BLOCK_HASHES} block hashes kept; re-index with "
            f"`index_chain --chain {caip2} --from-block N`."
        )
    with transaction.atomic():
        checkpoint.renew(caip2, token, indexed_to=ancestor)
        removed = rollback_above(caip2, ancestor)
    report.reorgs += 1
    report.rolled_back += removed
    logger.warning(
        "chain reorganisation",
        extra={"chain": caip2, "ancestor": ancestor, "was": indexed_to, "events_removed": removed},
    )
    return ancestor


def _hash_at(web3: Web3, number: int) -> str | None:
    """The chain's hash at ``number``; None only when the block does not exist (the new branch
    is shorter). Any other error propagates: an unreachable node is not a reorganisation."""
    try:
        return web3.eth.get_block(number)["hash"].to_0x_hex()
    except BlockNotFound:
        return None


def rollback_above(caip2: str, ancestor: int) -> int:
    """Delete what was indexed above ``ancestor`` (call inside a transaction); registrations
    confirmed in those blocks go back to being watched."""
    orphans = ChainEvent.objects.filter(chain=caip2, block_number__gt=ancestor)
    registered = list(orphans.filter(name="ContentRegistered").values_list("tx_hash", flat=True))
    if registered:
        Registration.objects.filter(
            chain=caip2,
            tx_hash__in=registered,
            status=RegistrationStatus.CONFIRMED,
            block_number__gt=ancestor,
        ).update(
            status=RegistrationStatus.SUBMITTED,
            block_number=None,
            block_hash="",
            confirmed_at=None,
            step_due_at=timezone.now(),  # watched again from now on (the reaper's clock)
        )

        for registration_id in Registration.objects.filter(
            chain=caip2, tx_hash__in=registered, status=RegistrationStatus.SUBMITTED
        ).values_list("pk", flat=True):
            enqueue_on_commit(tasks.chain_registration_advance, registration_id)
    # Transfers in orphaned blocks may have moved tokens: ownership answers go too.
    transfers: dict[str, set[str]] = defaultdict(set)
    for address, args in orphans.filter(
        name__in=("Transfer", "TransferSingle", "TransferBatch")
    ).values_list("address", "args"):
        for account in (args.get("from"), args.get("to")):
            if account and int(account, 16) != 0:
                transfers[address].add(account)
    if transfers:
        snapshot = {contract: sorted(accounts) for contract, accounts in transfers.items()}
        transaction.on_commit(lambda: checkpoint.announce(caip2, snapshot))
    # Purchases and grants in orphaned blocks may be gone: answers about their accounts go too.
    from apps.chain.log_reader import ACCESS_EVENTS

    accesses = sorted(
        {
            args.get(ACCESS_EVENTS[name])
            for name, args in orphans.filter(name__in=list(ACCESS_EVENTS)).values_list(
                "name", "args"
            )
        }
        - {None}
    )
    if accesses:
        transaction.on_commit(lambda: checkpoint.announce_access(caip2, accesses))
    # Offers and payouts made live in orphaned blocks are watched again, and what they had
    # replaced is live again (apps/chain/relay.py).
    from apps.chain.models import OfferSet, PayoutChange
    from apps.chain.relay import relay_rolled_back

    for model, event, scope, track in (
        (OfferSet, "OffersSet", "content_id", tasks.chain_offers_track),
        (PayoutChange, "PayoutSet", "creator", tasks.chain_payout_track),
    ):
        hashes = list(orphans.filter(name=event).values_list("tx_hash", flat=True))
        if hashes:
            for row_id in relay_rolled_back(model, caip2, hashes, ancestor, scope=scope):
                enqueue_on_commit(track, row_id)
    removed, _ = orphans.delete()
    IndexedBlock.objects.filter(chain=caip2, number__gt=ancestor).delete()
    return removed


def restart_at(caip2: str, token: str, indexed_to: int) -> None:
    """Move the cursor back to ``indexed_to`` and drop what was indexed above it (--from-block)."""
    with transaction.atomic():
        checkpoint.renew(caip2, token, indexed_to=indexed_to)
        rollback_above(caip2, indexed_to)
