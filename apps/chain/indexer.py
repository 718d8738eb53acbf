"""The event indexer: follows our registry and the NFT contracts gates name, safely.

- Only blocks at least ``confirmations`` deep (or at the ``finalized`` tag where the chain has
  one) are indexed, in batches of logs read by ``log_reader`` (ranges up to the chain's cap,
  halved whenever the node refuses one).
- Before every batch, ``reorgs`` compares the last indexed block's hash with the chain's and
  rolls back to the common ancestor if the chain reorganised.
- ``checkpoint`` holds the lease (one indexer per chain at a time), checks each batch's block
  headers and stores the batch with the cursor in one transaction (a replay changes nothing).
- Every NFT transfer seen sends ``nft_transfer_seen`` after commit (the access app drops its
  cached ownership answers for both accounts).
"""

import time
from dataclasses import dataclass

from web3 import Web3
from web3.exceptions import Web3RPCError

from apps.chain import checkpoint, log_reader, reorgs
from apps.chain.chains import Chain, chain, web3_for
from apps.chain.models import ChainContract, IndexerCursor
from streamgate import metrics

INDEXER_LAG = metrics.INDEXER_LAG


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
    token = checkpoint.acquire(caip2)
    report = IndexReport(chain=caip2)
    started = time.monotonic()
    try:
        cursor = IndexerCursor.objects.get(chain=caip2)
        if from_block is not None:
            reorgs.restart_at(caip2, token, from_block - 1)
            cursor.refresh_from_db()
        elif cursor.indexed_to < 0:
            cursor.indexed_to = _first_block(caip2) - 1
        indexed_to = cursor.indexed_to
        step = spec.log_range
        topics = log_reader.event_abis()
        while max_seconds is None or time.monotonic() - started < max_seconds:
            indexed_to = reorgs.check_reorg(web3, caip2, token, indexed_to, report)
            head, safe = safe_head(web3, spec)
            report.head = head
            INDEXER_LAG.labels(chain=caip2).set(max(0, head - indexed_to))
            if indexed_to >= safe:
                break
            followed = log_reader.followed_contracts(caip2)
            start = indexed_to + 1
            end = min(safe, start + step - 1)
            logs, end, step = log_reader.get_logs(
                web3, followed.addresses, topics, start, end, step, report
            )
            batch = log_reader.decode(web3, caip2, logs, followed, topics)
            try:
                checkpoint.verify(web3, caip2, batch, start, end)
            except checkpoint.BatchStale:
                report.stale_batches += 1
                continue  # the next round's reorg check finds where the chains part
            checkpoint.store(caip2, token, batch, end)
            indexed_to = end
            report.batches += 1
            report.events += len(batch.events)
            INDEXER_LAG.labels(chain=caip2).set(max(0, head - indexed_to))
        report.indexed_to = indexed_to
        checkpoint.renew(caip2, token, head=report.head)
    finally:
        checkpoint.release(caip2, token)
    return report


def _first_block(caip2: str) -> int:
    """Where a fresh index starts: the first of our contracts' deployments (0 if none)."""
    blocks = ChainContract.objects.filter(chain=caip2).values_list("deployed_block", flat=True)
    return min(blocks, default=0)
