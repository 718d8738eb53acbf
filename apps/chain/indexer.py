"""The event indexer: follows our registry and the NFT contracts gates name, safely.

- Only blocks at least ``confirmations`` deep (or at the ``finalized`` tag where the chain has
  one) are indexed, in ``eth_getLogs`` ranges up to the chain's cap, halved whenever the node
  refuses a range (-32005, "too many results", …).
- Each batch is stored in one transaction: its events (upserted, unique on chain + tx hash +
  log index, so a replay changes nothing), the hashes of its blocks, and the cursor.
- Before every batch the hash of the last indexed block is compared with the chain's: if it
  changed, the chain reorganised; stored blocks are walked back to the common ancestor, every
  event above it is deleted in one transaction, and indexing resumes from there.
- One indexer per chain at a time: a lease on the cursor row, like an upload's write lease.
- Every NFT transfer seen sends ``nft_transfer_seen`` after commit (the access app drops its
  cached ownership answers for both accounts).
"""

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from eth_utils import event_abi_to_log_topic
from web3 import Web3
from web3.exceptions import BlockNotFound, Web3RPCError

from apps.chain import tasks
from apps.chain.chains import Chain, artifact, chain, web3_for
from apps.chain.models import (
    ChainContract,
    ChainEvent,
    ContractKind,
    IndexedBlock,
    IndexerCursor,
    Registration,
    RegistrationStatus,
)
from apps.chain.signals import nft_transfer_seen
from apps.content.models import Content
from streamgate import metrics
from streamgate.celery import enqueue_on_commit

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
KEEP_BLOCK_HASHES = 512  # how far back a reorganisation can be traced

INDEXER_LAG = metrics.INDEXER_LAG

# How nodes say "that range is too wide for me" (Alchemy, Infura, QuickNode, Geth, Erigon…).
# Rate limits ("exceeded its compute units", "too many requests") are not among them: those
# are transient errors, retried as such, not a reason to shrink the range.
_REFUSALS = (
    "query returned more than",
    "block range",
    "range is too large",
    "too many blocks",
    "exceeds the range",
    "response size exceeded",
    "log response size",
    "too many logs",
    "limit exceeded: max",
    "results exceed",
)
_RATE_LIMITS = ("rate limit", "too many requests", "compute units", "capacity", "429")


class IndexerBusy(Exception):
    """Another indexer holds this chain's lease."""


class RangeRefused(Exception):
    """The node would not answer eth_getLogs for a range of one block."""


class DeepReorg(Exception):
    """The chain diverged below every block hash we kept: re-index with --from-block."""


class _BatchStale(Exception):
    """The chain moved under the batch being read (a reorganisation mid-batch): read again."""


@dataclass
class IndexReport:
    chain: str
    indexed_to: int = -1
    head: int = 0
    batches: int = 0
    events: int = 0
    reorgs: int = 0
    rolled_back: int = 0
    ranges_halved: int = 0
    stale_batches: int = 0


@dataclass(frozen=True)
class _Followed:
    addresses: list[str]
    kinds: dict[str, str]  # lowercased address -> "registry" | "erc721" | "erc1155"


@dataclass
class _Batch:
    events: list[ChainEvent] = field(default_factory=list)
    blocks: dict[int, tuple[str, str]] = field(default_factory=dict)
    transfers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _event_abis() -> dict[bytes, tuple[str, dict[str, Any]]]:
    """topic0 -> (contract kind, event ABI) for every event we index."""
    table = {}
    for name, kind, events in (
        ("ContentRegistry", "registry", ("ContentRegistered", "AccessGranted")),
        ("TestNFT721", "erc721", ("Transfer",)),
        ("TestNFT1155", "erc1155", ("TransferSingle", "TransferBatch")),
    ):
        for item in artifact(name)["abi"]:
            if item.get("type") == "event" and item["name"] in events:
                table[event_abi_to_log_topic(item)] = (kind, item)
    return table


# --- what to follow ----------------------------------------------------------------------------


def _gate_contracts(caip2: str) -> dict[str, str]:
    """Token contracts on ``caip2`` that any content's gate names: address -> kind."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for kind in ("erc721", "erc1155"):
                spec = node.get(kind)
                if isinstance(spec, dict) and spec.get("chain") == caip2 and spec.get("contract"):
                    found[str(spec["contract"]).lower()] = kind
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for gate in Content.objects.exclude(gate=None).values_list("gate", flat=True).iterator():
        walk(gate)
    return found


def follows_anything(caip2: str) -> bool:
    """Whether the chain has our contracts, or token contracts that gates name."""
    return ChainContract.objects.filter(chain=caip2).exists() or bool(_gate_contracts(caip2))


def _followed(caip2: str) -> _Followed:
    kinds = _gate_contracts(caip2)
    kind_of = {
        ContractKind.REGISTRY: "registry",
        ContractKind.NFT721: "erc721",
        ContractKind.NFT1155: "erc1155",
    }
    for address, kind in ChainContract.objects.filter(chain=caip2).values_list("address", "kind"):
        kinds[address.lower()] = kind_of[kind]
    addresses = sorted(Web3.to_checksum_address(address) for address in kinds)
    return _Followed(addresses=addresses, kinds=kinds)


# --- the lease ---------------------------------------------------------------------------------


def _acquire(caip2: str) -> str:
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


def _renew(caip2: str, token: str, **fields: Any) -> None:
    renewed = IndexerCursor.objects.filter(chain=caip2, lock_token=token).update(
        lock_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS), **fields
    )
    if not renewed:
        raise IndexerBusy(f"lost the indexer lease of {caip2}")


def _release(caip2: str, token: str) -> None:
    IndexerCursor.objects.filter(chain=caip2, lock_token=token).update(
        lock_token="", lock_expires_at=None
    )


# --- indexing ----------------------------------------------------------------------------------


def safe_head(web3: Web3, spec: Chain) -> tuple[int, int]:
    """(head, the last block deep enough to index)."""
    head = web3.eth.block_number
    if spec.finalized_tag:
        try:
            return head, int(web3.eth.get_block("finalized")["number"])
        except (Web3RPCError, ValueError, KeyError):
            pass
    return head, head - spec.confirmations


def index_chain(
    *, caip2: str, from_block: int | None = None, max_seconds: float | None = None
) -> IndexReport:
    """Index ``caip2`` up to its safe head (or until ``max_seconds`` have passed)."""
    spec = chain(caip2)
    web3 = web3_for(caip2)
    token = _acquire(caip2)
    report = IndexReport(chain=caip2)
    started = time.monotonic()
    try:
        cursor = IndexerCursor.objects.get(chain=caip2)
        if from_block is not None:
            _restart_at(caip2, token, from_block - 1)
            cursor.refresh_from_db()
        elif cursor.indexed_to < 0:
            cursor.indexed_to = _first_block(caip2) - 1
        indexed_to = cursor.indexed_to
        step = spec.log_range
        topics = _event_abis()
        while max_seconds is None or time.monotonic() - started < max_seconds:
            indexed_to = _check_reorg(web3, caip2, token, indexed_to, report)
            head, safe = safe_head(web3, spec)
            report.head = head
            INDEXER_LAG.labels(chain=caip2).set(max(0, head - indexed_to))
            if indexed_to >= safe:
                break
            followed = _followed(caip2)
            start = indexed_to + 1
            end = min(safe, start + step - 1)
            logs, end, step = _get_logs(web3, followed.addresses, topics, start, end, step, report)
            batch = _decode(web3, caip2, logs, followed, topics)
            try:
                _verify(web3, caip2, batch, start, end)
            except _BatchStale:
                report.stale_batches += 1
                continue  # the next round's reorg check finds where the chains part
            _store(caip2, token, batch, end)
            indexed_to = end
            report.batches += 1
            report.events += len(batch.events)
            INDEXER_LAG.labels(chain=caip2).set(max(0, head - indexed_to))
        report.indexed_to = indexed_to
        _renew(caip2, token, head=report.head)
    finally:
        _release(caip2, token)
    return report


def _first_block(caip2: str) -> int:
    """Where a fresh index starts: the first of our contracts' deployments (0 if none)."""
    blocks = ChainContract.objects.filter(chain=caip2).values_list("deployed_block", flat=True)
    return min(blocks, default=0)


def _restart_at(caip2: str, token: str, indexed_to: int) -> None:
    with transaction.atomic():
        _renew(caip2, token, indexed_to=indexed_to)
        _rollback_above(caip2, indexed_to)


def _get_logs(
    web3: Web3,
    addresses: list[str],
    topics: dict,
    start: int,
    end: int,
    step: int,
    report: IndexReport,
) -> tuple[list[dict], int, int]:
    """Logs of [start, end], halving the range while the node refuses it. Returns the logs,
    the end actually covered and the step that worked."""
    if not addresses:
        return [], end, step
    while True:
        try:
            logs = web3.eth.get_logs(
                {
                    "fromBlock": start,
                    "toBlock": end,
                    "address": addresses,
                    "topics": [[Web3.to_hex(topic) for topic in topics]],
                }
            )
            return list(logs), end, step
        except (Web3RPCError, ValueError) as error:
            if not _refused(error):
                raise
            if end == start:
                raise RangeRefused(
                    f"the node refuses eth_getLogs even for block {start}"
                ) from error
            step = max(1, (end - start + 1) // 2)
            end = start + step - 1
            report.ranges_halved += 1
            logger.info("log range halved", extra={"start": start, "step": step})


def _refused(error: Exception) -> bool:
    text = str(error).lower()
    if any(word in text for word in _RATE_LIMITS):
        return False
    response = getattr(error, "rpc_response", None) or {}
    code = str((response.get("error") or {}).get("code", ""))
    return code == "-32005" or any(word in text for word in _REFUSALS)


def _decode(
    web3: Web3, caip2: str, logs: Iterable[dict], followed: _Followed, topics: dict
) -> _Batch:
    batch = _Batch()
    codec = web3.codec
    from web3._utils.events import get_event_data

    for log in logs:
        topic0 = bytes(log["topics"][0]) if log["topics"] else b""
        known = topics.get(topic0)
        address = Web3.to_checksum_address(log["address"])
        if known is None or followed.kinds.get(address.lower()) != known[0]:
            continue
        try:
            decoded = get_event_data(codec, known[1], log)
        except Exception:  # noqa: BLE001 - an ERC-20 Transfer has the ERC-721 topic; not ours
            logger.debug("log not decodable as %s", known[1]["name"])
            continue
        args = {key: _jsonable(value) for key, value in decoded["args"].items()}
        block_hash = log["blockHash"].to_0x_hex()
        batch.events.append(
            ChainEvent(
                chain=caip2,
                block_number=log["blockNumber"],
                block_hash=block_hash,
                tx_hash=log["transactionHash"].to_0x_hex(),
                log_index=log["logIndex"],
                address=address,
                name=decoded["event"],
                args=args,
            )
        )
        batch.blocks.setdefault(log["blockNumber"], (block_hash, ""))
        if decoded["event"] in ("Transfer", "TransferSingle", "TransferBatch"):
            for account in (args.get("from"), args.get("to")):
                if account and int(account, 16) != 0:
                    batch.transfers[address].add(account)
    return batch


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _verify(web3: Web3, caip2: str, batch: _Batch, start: int, end: int) -> None:
    """Read the headers of the batch's blocks after its logs, and check they agree: the logs'
    block hashes, and the first block's parent with the hash we stored for the one before.
    A reorganisation between our calls shows up here instead of being stored."""
    for number in sorted({*batch.blocks, end}):
        header = web3.eth.get_block(number)
        block_hash, parent_hash = header["hash"].to_0x_hex(), header["parentHash"].to_0x_hex()
        logged = batch.blocks.get(number)
        if logged and logged[0] != block_hash:
            raise _BatchStale(f"block {number} changed during the batch")
        batch.blocks[number] = (block_hash, parent_hash)
    previous = IndexedBlock.objects.filter(chain=caip2, number=start - 1).first()
    if previous is not None:
        first = web3.eth.get_block(start)["parentHash"].to_0x_hex()
        if first != previous.hash:
            raise _BatchStale(f"block {start} no longer follows the block we indexed")


def _store(caip2: str, token: str, batch: _Batch, end: int) -> None:
    """The batch's events, its blocks' hashes and the cursor, all or nothing."""
    with transaction.atomic():
        _renew(caip2, token, indexed_to=end)
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
        transfers = {contract: sorted(accounts) for contract, accounts in batch.transfers.items()}
        if transfers:
            transaction.on_commit(lambda: _announce(caip2, transfers))


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
    for event in events:
        if event.name == "ContentRegistered":
            Registration.objects.filter(
                chain=caip2, tx_hash=event.tx_hash, status=RegistrationStatus.SUBMITTED
            ).update(
                status=RegistrationStatus.CONFIRMED,
                block_number=event.block_number,
                block_hash=event.block_hash,
                confirmed_at=timezone.now(),
            )


def _announce(caip2: str, transfers: dict[str, list[str]]) -> None:
    for contract, accounts in transfers.items():
        nft_transfer_seen.send(
            sender=IndexedBlock, chain=caip2, contract=contract, accounts=accounts
        )


# --- reorganisations ---------------------------------------------------------------------------


def _check_reorg(web3: Web3, caip2: str, token: str, indexed_to: int, report: IndexReport) -> int:
    """The block to resume after: ``indexed_to``, or the common ancestor after a reorg."""
    stored = IndexedBlock.objects.filter(chain=caip2, number__lte=indexed_to).order_by("-number")
    latest = stored.first()
    if latest is None or _hash_at(web3, latest.number) == latest.hash:
        return indexed_to
    ancestor = None
    for checked, block in enumerate(stored[1:KEEP_BLOCK_HASHES], start=1):
        if checked % 50 == 0:
            _renew(caip2, token)  # a long walk back must not outlive the lease
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
        _renew(caip2, token, indexed_to=ancestor)
        removed = _rollback_above(caip2, ancestor)
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


def _rollback_above(caip2: str, ancestor: int) -> int:
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
        transaction.on_commit(lambda: _announce(caip2, snapshot))
    removed, _ = orphans.delete()
    IndexedBlock.objects.filter(chain=caip2, number__gt=ancestor).delete()
    return removed
