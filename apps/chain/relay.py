"""Relaying what a creator signed (a set of offers, a payout address) with StreamGate's signer.

The creator's wallet signs EIP-712 typed data; the registry checks that signature and its nonce
itself, so the relayer pays the gas but cannot change a term. A signed row (``SignedConsent``:
an OfferSet or a PayoutChange) is claimed by a conditional update (a second delivery of the task
sends nothing), its transaction's nonce and hash are committed before it is broadcast, and
``relay_track`` watches it until it is confirmed (then the row's own ``confirm`` makes it live)
or reverted, or never mined.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone
from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from apps.chain.chains import chain, signer, web3_for
from apps.chain.models import OfferSetStatus, SignedConsent
from apps.chain.nonces import nonce_reconcile, nonce_refused
from apps.chain.transactions import (
    Reverted,
    current_fees,
    estimate_gas,
    next_nonce,
    release_nonce,
    sign,
)

logger = logging.getLogger(__name__)

GIVE_UP_SECONDS = 1800  # a relayed transaction not mined by then: the creator signs again
Status = OfferSetStatus


def relay_signature(signature: Any) -> bytes:
    """A wallet's signature from JSON (0x-hex), or DomainError."""
    from streamgate.exceptions import DomainError

    message = '"signature" must be a 0x-prefixed hex string.'
    if not isinstance(signature, str) or not signature.startswith("0x"):
        raise DomainError(message, reason="signature")
    try:
        return bytes.fromhex(signature[2:])
    except ValueError:
        raise DomainError(message, reason="signature") from None


def relay_fail(model: type[SignedConsent], row_id: int, message: str) -> None:
    logger.warning("relay failed", extra={"model": model.__name__, "id": row_id, "error": message})
    model.objects.filter(pk=row_id).exclude(status=Status.LIVE).update(
        status=Status.FAILED, error=message[:1000], updated_at=timezone.now()
    )


def relay_send(
    model: type[SignedConsent],
    row_id: int,
    build_call: Callable[[SignedConsent, Web3], Any],
    *,
    then: Callable[[int], None],
) -> SignedConsent | None:
    """Send the signed row's call; ``then(row_id)`` then schedules its tracking.
    Transient node errors propagate (the task retries) and give the claim back."""
    row = model.objects.select_related("registry").filter(pk=row_id).first()
    if row is None or row.status != Status.RELAYING or row.sender:
        return row
    account = signer()
    if not model.objects.filter(pk=row_id, status=Status.RELAYING, sender="").update(
        sender=account.address
    ):
        return row
    spec = chain(row.chain)
    web3 = web3_for(row.chain)
    call = build_call(row, web3)
    try:
        try:
            gas = estimate_gas(call, account.address, contract_names=("ContentRegistry",))
        except Reverted as error:
            relay_fail(model, row_id, f"The registry refused it: {error}. Sign again.")
            return model.objects.get(pk=row_id)
        fees = current_fees(web3, spec)
        pending = nonce_reconcile(web3=web3, chain=spec, account=account)
    except BaseException:
        model.objects.filter(pk=row_id, status=Status.RELAYING).update(sender="")
        raise
    refused = False
    while True:  # once more after a refusal for the nonce, with the row healed
        with transaction.atomic():
            nonce = next_nonce(chain=spec, address=account.address, node_pending=pending)
            raw = sign(
                call, account=account, nonce=nonce, gas=gas, fees=fees, chain_id=spec.chain_id
            )
            model.objects.filter(pk=row_id).update(
                status=Status.SUBMITTED,
                tx_nonce=nonce,
                tx_hash=Web3.keccak(raw).to_0x_hex(),
                updated_at=timezone.now(),
            )
        try:
            web3.eth.send_raw_transaction(raw)
        except (Web3RPCError, ValueError) as error:
            if "already known" not in str(error).lower():
                release_nonce(row.chain, account.address, nonce)
                if nonce_refused(error) and not refused:
                    refused = True
                    model.objects.filter(pk=row_id).update(tx_nonce=None)  # holds no nonce now
                    pending = nonce_reconcile(web3=web3, chain=spec, account=account, refused=True)
                    continue
                relay_fail(model, row_id, f"The node refused the transaction: {str(error)[:300]}")
                return model.objects.get(pk=row_id)
        except (RequestException, TimeoutError, ConnectionError):
            # It may or may not have left: tracking finds it mined, or fails the row after
            # GIVE_UP_SECONDS with a message to sign again (never a row left "submitted").
            logger.warning("relay broadcast failed", extra={"model": model.__name__, "id": row_id})
        break
    then(row_id)
    return model.objects.get(pk=row_id)


def relay_track(
    model: type[SignedConsent],
    row_id: int,
    confirm: Callable[[SignedConsent, TxReceipt, Web3], None],
) -> bool:
    """Look at a sent row's transaction: ``confirm`` once it has the chain's confirmations,
    failed if it reverted or was never mined. True when there is nothing more to watch."""
    row = model.objects.select_related("registry").filter(pk=row_id).first()
    if row is None or row.status != Status.SUBMITTED:
        return True
    web3 = web3_for(row.chain)
    try:
        receipt = web3.eth.get_transaction_receipt(row.tx_hash)
    except TransactionNotFound:
        if (timezone.now() - row.updated_at).total_seconds() > GIVE_UP_SECONDS:
            relay_fail(
                model,
                row_id,
                f"Transaction {row.tx_hash} was not mined in {GIVE_UP_SECONDS} s; sign again.",
            )
            return True
        return False
    if receipt["status"] != 1:
        relay_fail(model, row_id, f"Transaction {row.tx_hash} reverted; sign again.")
        return True
    if web3.eth.block_number - receipt["blockNumber"] < chain(row.chain).confirmations:
        return False
    confirm(row, receipt, web3)
    return True


def relay_rolled_back(
    model: type[SignedConsent], caip2: str, tx_hashes: list[str], ancestor: int, *, scope: str
) -> list[int]:
    """A reorganisation orphaned the blocks that made these rows live (call inside the
    rollback's transaction): each goes back to being watched (``submitted``), and the row it
    had superseded (the newest one of its ``scope``, e.g. the same content, made live at or
    below ``ancestor``) is live again, as it is on the chain now. Returns the rows to track."""
    rows = list(
        model.objects.filter(
            chain=caip2, tx_hash__in=[h.lower() for h in tx_hashes], status=Status.LIVE
        )
    )
    for row in rows:
        model.objects.filter(pk=row.pk).update(
            status=Status.SUBMITTED, block_number=None, updated_at=timezone.now()
        )
        previous = (
            model.objects.filter(
                chain=caip2,
                status=Status.SUPERSEDED,
                block_number__lte=ancestor,
                **{scope: getattr(row, scope)},
            )
            .order_by("-block_number", "-pk")
            .first()
        )
        if previous is not None:
            model.objects.filter(pk=previous.pk).update(
                status=Status.LIVE, updated_at=timezone.now()
            )
    return [row.pk for row in rows]
