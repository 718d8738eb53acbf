"""Nonces that heal: our signer's nonce row brought back in line with the chain.

The row (transactions.next_nonce) hands out nonces; the node's pending count is the truth about
which ones the chain has. They disagree when a transaction is dropped from the mempool, when the
same key signs elsewhere, or when a test chain is reset under a running stack; without healing,
every later transaction fails with "nonce too high/low". ``nonce_reconcile`` runs before each
reservation (outside any transaction: it asks the node) and heals three cases, each counted in
``streamgate_signer_nonce_reconciled_total{chain,reason}`` and logged as a WARNING:

- ``nonce_too_low``: the node counts more transactions than we handed out (the key was used
  elsewhere, or the row was restored from an old backup): the row jumps to the node's count.
- ``nonce_too_high``: the row is ahead and no live transaction of ours (a submitted registration
  or relayed consent) holds a nonce in the gap: the transactions there are gone (a chain reset, a
  dropped deployment), and the row goes back to the node's count.
- ``gap_filled``: live transactions of ours sit above nonces nothing holds (a dropped transaction
  below them): each free nonce gets a 0-value transfer to ourselves, so the node can mine the ones
  above (registrations re-send theirs when tracking finds them stuck).

A gap younger than CHAIN_NONCE_GRACE_SECONDS is left alone, as it may be a transaction between
its reservation and its broadcast; ``refused=True`` (the node has just refused one of ours for its
nonce) skips that wait.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3RPCError

from apps.chain.chains import Chain
from apps.chain.models import (
    OfferSet,
    OfferSetStatus,
    PayoutChange,
    Registration,
    RegistrationStatus,
    SignerNonce,
)
from apps.chain.transactions import current_fees, node_pending_count
from streamgate.metrics import NONCE_RECONCILED

logger = logging.getLogger(__name__)

TRANSFER_GAS = 21_000
# What a node answers when a nonce is already taken: the gap was filled meanwhile.
_TAKEN = ("already known", "nonce too low", "replacement transaction underpriced")


REASONS = ("nonce_too_low", "nonce_too_high", "gap_filled")


def nonce_series_start() -> None:
    """Export the counter at 0 for every configured EVM chain and reason (before /metrics)."""
    for caip2 in settings.CHAIN_RPC_URLS:
        if caip2.startswith("eip155:"):
            for reason in REASONS:
                NONCE_RECONCILED.labels(chain=caip2, reason=reason)


def nonce_refused(error: Exception) -> bool:
    """The node refused a transaction for its nonce (too high, too low): worth a reconcile."""
    text = str(error).lower()
    return "nonce too high" in text or "nonce too low" in text


def nonce_reconcile(
    *, web3: Web3, chain: Chain, account: LocalAccount, refused: bool = False
) -> int:
    """Heal ``account``'s nonce row on ``chain`` if the node disagrees with it, and return the
    node's pending count (the floor next_nonce takes). Call outside any transaction."""
    address = account.address
    pending = node_pending_count(web3, address)
    row = SignerNonce.objects.filter(chain=chain.caip2, address=address).first()
    if row is None or row.next_nonce == pending:
        return pending
    if row.next_nonce < pending:
        _move(chain, address, row.next_nonce, pending, "nonce_too_low")
        return pending
    grace = timedelta(seconds=settings.CHAIN_NONCE_GRACE_SECONDS)
    if not refused and row.reserved_at is not None and timezone.now() - row.reserved_at < grace:
        return pending  # maybe a transaction on its way to the node
    held = _held_nonces(chain.caip2, address, pending, row.next_nonce)
    if not held:
        _move(chain, address, row.next_nonce, pending, "nonce_too_high")
        return pending
    top = max(held) + 1
    free = [nonce for nonce in range(pending, top) if nonce not in held]
    for nonce in free:
        _fill(web3, chain, account, nonce)
    if free:
        NONCE_RECONCILED.labels(chain=chain.caip2, reason="gap_filled").inc()
        logger.warning(
            "signer nonce gap filled",
            extra={"chain": chain.caip2, "address": address, "nonces": free},
        )
    if row.next_nonce > top:
        _move(chain, address, row.next_nonce, top, "nonce_too_high")
    return pending


def _move(chain: Chain, address: str, seen: int, to: int, reason: str) -> None:
    """Set the row to ``to`` if it still holds ``seen`` (a reservation meanwhile wins)."""
    if SignerNonce.objects.filter(chain=chain.caip2, address=address, next_nonce=seen).update(
        next_nonce=to
    ):
        NONCE_RECONCILED.labels(chain=chain.caip2, reason=reason).inc()
        logger.warning(
            "signer nonce reconciled with the chain",
            extra={
                "chain": chain.caip2,
                "address": address,
                "was": seen,
                "now": to,
                "reason": reason,
            },
        )


def _held_nonces(caip2: str, address: str, low: int, high: int) -> set[int]:
    """Nonces in [low, high) that a live transaction of ours was signed with."""
    held = set(
        Registration.objects.filter(
            chain=caip2,
            sender=address,
            status=RegistrationStatus.SUBMITTED,
            nonce__gte=low,
            nonce__lt=high,
        ).values_list("nonce", flat=True)
    )
    for model in (OfferSet, PayoutChange):
        held.update(
            model.objects.filter(
                chain=caip2,
                sender=address,
                status=OfferSetStatus.SUBMITTED,
                tx_nonce__gte=low,
                tx_nonce__lt=high,
            ).values_list("tx_nonce", flat=True)
        )
    return {int(nonce) for nonce in held if nonce is not None}


def _fill(web3: Web3, chain: Chain, account: LocalAccount, nonce: int) -> None:
    """A 0-value transfer to ourselves at ``nonce``; nothing if the nonce is taken meanwhile."""
    fees = current_fees(web3, chain)
    raw = account.sign_transaction(
        {
            "from": account.address,
            "to": account.address,
            "value": 0,
            "nonce": nonce,
            "chainId": chain.chain_id or 0,  # an EVM chain: it has one
            "gas": TRANSFER_GAS,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
            "type": 2,
        }
    ).raw_transaction
    try:
        web3.eth.send_raw_transaction(raw)
    except (Web3RPCError, ValueError) as error:
        if not any(taken in str(error).lower() for taken in _TAKEN):
            raise
