"""Buying access and being paid for it.

StreamGate never holds a viewer's key or funds: ``purchase_transactions`` answers the
transactions the viewer's own wallet sends (an ERC-20 approve first when its allowance is short,
or one ``buyWithPermit`` after the viewer signs an EIP-2612 permit), and ``withdraw_transactions``
the one that sends a creator's proceeds to the payout address they signed for.
``purchase_status`` follows a purchase from sent to indexed; once the chain has confirmed it,
the buyer's cached gate answers are dropped so that playback opens at once. ``sales_of`` lists a
creator's sales from the indexed ``AccessPurchased`` events (rolled back with them in a reorg)
and reads what is withdrawable from the registry.
"""

import logging
import re
import time
from collections import defaultdict
from typing import Any

from eth_utils import is_address, to_checksum_address
from web3.exceptions import TransactionNotFound

from apps.chain.accounts import user_addresses
from apps.chain.chains import (
    ChainNotConfigured,
    chain,
    content_id_bytes32,
    contract_for,
    web3_for,
)
from apps.chain.currencies import currency_of, erc20
from apps.chain.market_chains import market_web3
from apps.chain.models import ChainEvent, Offer, OfferSetStatus, Registration, RegistrationStatus
from apps.chain.offers import offer_sells_or_refuse
from apps.chain.relay import relay_signature
from apps.chain.signals import registry_access_changed
from apps.chain.typed_data import NATIVE, permit_typed_data
from apps.content.models import Content
from streamgate.exceptions import Conflict, DomainError, NotFound

logger = logging.getLogger(__name__)

PERMIT_SECONDS = 1800
_TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}\Z")


def _tx(caip2: str, to: str, data: str, value: int = 0) -> dict[str, str]:
    """A transaction as EIP-1193's ``eth_sendTransaction`` takes it (hex quantities)."""
    return {"chainId": hex(chain(caip2).chain_id), "to": to, "data": data, "value": hex(value)}


def _buyer(user, caip2: str, account: Any) -> str:
    addresses = user_addresses(user, caip2)
    if not addresses:
        raise Conflict(
            f"Link an Ethereum wallet that holds funds on {caip2} to buy.", reason="no_wallet"
        )
    if account is None:
        return addresses[0]
    if not isinstance(account, str) or not is_address(account):
        raise DomainError('"account" must be an address.', reason="account")
    if to_checksum_address(account) not in addresses:
        raise DomainError(f"{account} is not one of your linked wallets.", reason="account")
    return to_checksum_address(account)


def _offer(content: Content, offer_id: Any) -> Offer:
    if not isinstance(offer_id, int) or isinstance(offer_id, bool):
        raise DomainError('"offer" must be the id of one of the content\'s offers.', reason="offer")
    offer = (
        Offer.objects.select_related("offer_set__registry")
        .filter(pk=offer_id, offer_set__content=content, offer_set__status=OfferSetStatus.LIVE)
        .first()
    )
    if offer is None:
        raise NotFound(
            "This content has no such offer (it may have been replaced).", reason="offer"
        )
    return offer


def purchase_transactions(
    *,
    content: Content,
    user,
    offer_id: Any,
    account: Any = None,
    permit: bool = False,
    signature: Any = None,
    deadline: Any = None,
) -> dict[str, Any]:
    """``{"transactions": [...]}`` the buyer's wallet sends (the API answers the list), or
    ``{"typed_data": ...}`` for a permit to sign first (``permit`` without ``signature``)."""
    offer = _offer(content, offer_id)
    caip2 = offer.offer_set.chain
    # The gate may have changed since the offer was published: never sell what cannot open it.
    offer_sells_or_refuse(content, offer.kind, caip2, "This offer")
    buyer = _buyer(user, caip2, account)
    web3 = market_web3(caip2)
    registry = contract_for(web3, "ContentRegistry", offer.offer_set.registry.address)
    content_key = content_id_bytes32(content.id)
    amount, onchain_id = int(offer.amount), int(offer.onchain_id)
    buy = registry.functions.buy(content_key, onchain_id, amount)
    if not offer.token:
        return {
            "transactions": [_tx(caip2, registry.address, buy._encode_transaction_data(), amount)]
        }
    token = erc20(web3, offer.token)
    if permit:
        currency = currency_of(web3, caip2, offer.token)
        if currency.permit_domain is None:
            raise Conflict(
                f"{currency.symbol} does not take permits: approve instead.", reason="no_permit"
            )
        if signature is None:
            expires = int(time.time()) + PERMIT_SECONDS
            typed = permit_typed_data(
                chain_id=chain(caip2).chain_id,
                token=offer.token,
                token_name=currency.permit_domain[0],
                token_version=currency.permit_domain[1],
                owner=buyer,
                spender=registry.address,
                value=amount,
                nonce=token.functions.nonces(buyer).call(),
                deadline=expires,
            )
            return {"typed_data": typed, "deadline": expires}
        if (
            not isinstance(deadline, int)
            or isinstance(deadline, bool)
            or not 0 <= deadline < 2**256
        ):
            raise DomainError(
                '"deadline" (from the permit\'s typed data) is required.', reason="deadline"
            )
        raw = _signature(signature)
        call = registry.functions.buyWithPermit(
            content_key, onchain_id, amount, deadline, raw[64], raw[:32], raw[32:64]
        )
        return {"transactions": [_tx(caip2, registry.address, call._encode_transaction_data())]}
    transactions = []
    if token.functions.allowance(buyer, registry.address).call() < amount:
        approve = token.functions.approve(registry.address, amount)
        transactions.append(_tx(caip2, token.address, approve._encode_transaction_data()))
    transactions.append(_tx(caip2, registry.address, buy._encode_transaction_data()))
    return {"transactions": transactions}


def _signature(signature: Any) -> bytes:
    """A permit's 65-byte signature (relay_signature parses the hex), v as 27 or 28."""
    raw = relay_signature(signature)
    if len(raw) != 65:
        raise DomainError('"signature" must be a 65-byte 0x-hex signature.', reason="signature")
    v = raw[64] if raw[64] >= 27 else raw[64] + 27
    return raw[:64] + bytes([v])


def purchase_status(*, content: Content, user, tx_hash: Any) -> dict[str, Any]:
    """Where a purchase transaction is: pending, mined, confirmed (the chain's confirmations),
    indexed, or failed. From confirmed on, the buyer's cached gate answers are dropped."""
    if not isinstance(tx_hash, str) or not _TX_HASH.match(tx_hash):
        raise DomainError('"tx" must be a transaction hash (0x and 64 hex digits).', reason="tx")
    registrations = Registration.objects.filter(
        content=content, status=RegistrationStatus.CONFIRMED
    ).select_related("contract")
    content_key = "0x" + content_id_bytes32(content.id).hex()
    for registration in registrations:
        caip2 = registration.chain
        # Only a purchase of this content, and playable only for its buyer.
        buyers = {
            args["buyer"]
            for args in ChainEvent.objects.filter(
                chain=caip2,
                tx_hash=tx_hash.lower(),
                name="AccessPurchased",
                args__contentId=content_key,
            ).values_list("args", flat=True)
        }
        if buyers:
            playable = bool(buyers & set(user_addresses(user, caip2)))
            return {"state": "indexed", "chain": caip2, "confirmations": None, "playable": playable}
        try:
            web3 = web3_for(caip2)
        except ChainNotConfigured:
            continue  # registered where this server has no RPC now: nothing to ask
        try:
            receipt = web3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            continue
        if receipt["status"] != 1:
            return {"state": "failed", "chain": caip2, "confirmations": 0, "playable": False}
        registry = contract_for(web3, "ContentRegistry", registration.contract.address)
        bought = [
            event
            for event in registry.events.AccessPurchased().process_receipt(receipt, errors=_DISCARD)
            if bytes(event.args.contentId) == content_id_bytes32(content.id)
        ]
        if not bought:
            continue  # not a purchase of this content on this chain
        confirmations = web3.eth.block_number - receipt["blockNumber"] + 1
        if confirmations <= chain(caip2).confirmations:
            return {
                "state": "mined",
                "chain": caip2,
                "confirmations": confirmations,
                "playable": False,
            }
        buyers = sorted({event.args.buyer for event in bought})
        mine = [b for b in buyers if b in user_addresses(user, caip2)]
        if mine:
            registry_access_changed.send(sender=Registration, chain=caip2, accounts=mine)
        return {
            "state": "confirmed",
            "chain": caip2,
            "confirmations": confirmations,
            "playable": bool(mine),
        }
    return {"state": "pending", "chain": None, "confirmations": 0, "playable": False}


def _discard():
    from web3.logs import DISCARD

    return DISCARD


_DISCARD = _discard()


# --- creators' side ----------------------------------------------------------------------------


def creator_chains(user) -> dict[str, tuple[str, set[str]]]:
    """chain -> (registry address, the creator addresses it records for the user's contents)."""
    found: dict[str, tuple[str, set[str]]] = {}
    rows = Registration.objects.filter(
        content__owner=user, status=RegistrationStatus.CONFIRMED
    ).values_list("chain", "contract__address", "creator")
    for caip2, registry, creator in rows:
        found.setdefault(caip2, (registry, set()))[1].add(creator)
    return found


def sales_of(*, user, limit: int = 200) -> dict[str, Any]:
    """The purchases of ``user``'s contents, totals per chain and currency, and what each of
    their creator addresses may withdraw now (null where the chain did not answer)."""
    contents = {
        "0x" + content_id_bytes32(pk).hex(): (pk, title)
        for pk, title in Content.objects.filter(owner=user).values_list("pk", "title")
    }
    events = ChainEvent.objects.filter(
        name="AccessPurchased", args__contentId__in=list(contents)
    ).order_by("-block_number", "-log_index")
    purchases, totals = [], defaultdict(lambda: {"gross": 0, "fees": 0, "count": 0})
    symbols: dict[tuple[str, str], tuple[str, int]] = {}
    for event in events.iterator():
        args = event.args
        token = to_checksum_address(args["token"])
        amount, fee = int(str(args["amount"])), int(str(args["fee"]))
        key = (event.chain, token)
        total = totals[key]
        total["gross"] += amount
        total["fees"] += fee
        total["count"] += 1
        if len(purchases) < limit:
            content_pk, title = contents[args["contentId"]]
            purchases.append(
                {
                    "content": str(content_pk),
                    "title": title,
                    "chain": event.chain,
                    "buyer": args["buyer"],
                    "kind": _kind_name(int(args["kind"]), int(str(args["expiresAt"]))),
                    "currency": _currency(event.chain, token, symbols),
                    "amount": str(amount),
                    "fee": str(fee),
                    "expires_at": _expiry(int(str(args["expiresAt"]))),
                    "tx_hash": event.tx_hash,
                    "block": event.block_number,
                }
            )
    return {
        "purchases": purchases,
        "totals": [
            {
                "chain": caip2,
                "currency": _currency(caip2, token, symbols),
                "gross": str(total["gross"]),
                "fees": str(total["fees"]),
                "net": str(total["gross"] - total["fees"]),
                "count": total["count"],
            }
            for (caip2, token), total in sorted(totals.items())
        ],
        "balances": _balances(user, {key[1] for key in totals} | {NATIVE}, symbols),
    }


FOREVER = 2**64 - 1


def _kind_name(kind: int, expires_at: int) -> str:
    if kind == 1:
        return "membership"
    return "purchase" if expires_at == FOREVER else "rental"


def _expiry(expires_at: int) -> str | None:
    if expires_at == FOREVER:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(expires_at, tz=UTC).isoformat().replace("+00:00", "Z")


def _currency(caip2: str, token: str, known: dict) -> dict[str, Any]:
    key = (caip2, token)
    if key not in known:
        symbol, decimals = "ETH" if int(token, 16) == 0 else token[:10], 18
        offer = Offer.objects.filter(
            offer_set__chain=caip2, token="" if int(token, 16) == 0 else token
        ).first()
        if offer is not None:
            symbol, decimals = offer.symbol, offer.decimals
        known[key] = (symbol, decimals)
    symbol, decimals = known[key]
    return {
        "address": None if int(token, 16) == 0 else token,
        "symbol": symbol,
        "decimals": decimals,
    }


def _balances(user, tokens: set[str], symbols: dict) -> list[dict[str, Any]]:
    balances = []
    for caip2, (registry_address, creators) in sorted(creator_chains(user).items()):
        try:
            registry = contract_for(web3_for(caip2), "ContentRegistry", registry_address)
        except Exception:  # noqa: BLE001 - a chain without RPC now: shown as unknown
            registry = None
        for creator in sorted(creators):
            for token in sorted(tokens):
                try:
                    amount = (
                        str(registry.functions.balanceOf(creator, token).call())
                        if registry
                        else None
                    )
                except Exception:
                    logger.warning("balance unavailable", extra={"chain": caip2}, exc_info=True)
                    amount = None
                if amount == "0" and token != NATIVE:
                    continue
                balances.append(
                    {
                        "chain": caip2,
                        "account": creator,
                        "payout": _payout(registry, creator),
                        "currency": _currency(caip2, token, symbols),
                        "withdrawable": amount,
                    }
                )
    return balances


def _payout(registry, creator: str) -> str | None:
    try:
        return registry.functions.payoutOf(creator).call() if registry else None
    except Exception:  # noqa: BLE001
        return None


def withdraw_transactions(*, user, caip2: Any, currency: Any) -> dict[str, Any]:
    """The transaction that sends the creator's whole balance in ``currency`` (null: the native
    coin) on ``caip2`` to their payout address."""
    chains = creator_chains(user)
    if not isinstance(caip2, str) or caip2 not in chains:
        raise DomainError("None of your contents is registered on that chain.", reason="chain")
    if currency is not None and not (isinstance(currency, str) and is_address(currency)):
        raise DomainError(
            '"currency" must be a token address, or null for the native coin.', reason="currency"
        )
    token = to_checksum_address(currency) if currency else NATIVE
    registry_address, creators = chains[caip2]
    registry = contract_for(market_web3(caip2), "ContentRegistry", registry_address)
    transactions = []
    for creator in sorted(creators):
        if registry.functions.balanceOf(creator, token).call() > 0:
            call = registry.functions.withdraw(creator, token)
            transactions.append(_tx(caip2, registry.address, call._encode_transaction_data()))
    if not transactions:
        raise Conflict(
            "Nothing to withdraw in that currency on that chain.", reason="nothing_to_withdraw"
        )
    return {"transactions": transactions}
