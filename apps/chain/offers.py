"""A content's offers: what its creator signs, how StreamGate relays it, when it is live.

1. ``offers_propose``: the creator asks to set offers; we check them, read each token's symbol
   and decimals and the creator's nonce on the registry, and keep an unsigned draft whose EIP-712
   typed data the creator's wallet signs (``eth_signTypedData_v4``).
2. ``offers_sign``: the same offers with the signature; it must be the on-chain creator's (an
   EOA's ECDSA signature, or an ERC-1271 wallet's answer), then the relay task sends
   ``setOffers`` with StreamGate's signer, who pays the gas but cannot change a term: the
   registry checks the signature itself.
3. The set is live once its transaction is confirmed (the relay's tracking, or the indexer
   seeing ``OffersSet``, whichever comes first); the set it replaced is superseded.
"""

import logging
import time
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from apps.chain import tasks
from apps.chain.accounts import user_addresses
from apps.chain.chains import chain, content_id_bytes32, contract_for, web3_for
from apps.chain.currencies import Currency, currency_of
from apps.chain.market_chains import market_web3
from apps.chain.models import (
    ChainEvent,
    Offer,
    OfferKind,
    OfferSet,
    OfferSetStatus,
    Registration,
    RegistrationStatus,
    SignedConsent,
)
from apps.chain.relay import relay_send, relay_signature, relay_track
from apps.chain.typed_data import (
    KIND_ACCESS,
    KIND_MEMBERSHIP,
    NATIVE,
    Terms,
    set_offers_typed_data,
    typed_data_digest,
    typed_data_signer,
)
from apps.content.audit import audit_record
from apps.content.models import Content
from streamgate.celery import enqueue_on_commit, enqueue_on_commit_with
from streamgate.exceptions import Conflict, DomainError

logger = logging.getLogger(__name__)

MAX_OFFERS = 8  # the registry's MAX_OFFERS
MAX_PERIOD = 100 * 365 * 86400
SIGNATURE_SECONDS = 3600  # how long a creator has to sign (the typed data's deadline)
ERC1271_MAGIC = bytes.fromhex("1626ba7e")
ERC1271_ABI = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]


# --- reading ------------------------------------------------------------------------------------


def offers_live(content: Content) -> list[Offer]:
    """The offers buyers can take now: those of the content's live set on each chain."""
    return list(
        Offer.objects.filter(
            offer_set__content=content, offer_set__status=OfferSetStatus.LIVE
        ).select_related("offer_set")
    )


def offer_condition_kind(kind: str) -> str:
    """The gate rule an offer of ``kind`` meets: "membership", or "purchase" (for ever or
    rented)."""
    return "membership" if kind == OfferKind.MEMBERSHIP else "purchase"


def gate_sells(gate: Any, kind: str, caip2: str) -> bool:
    """Whether ``gate`` has a rule that an offer of ``kind`` on ``caip2`` meets, outside any
    "not" (a buyer must be able to get in by buying)."""
    wanted = offer_condition_kind(kind)

    def walk(node: Any) -> bool:
        if isinstance(node, list):
            return any(walk(child) for child in node)
        if not isinstance(node, dict) or len(node) != 1:
            return False
        ((rule, body),) = node.items()
        if rule == "not":
            return False
        if rule == wanted:
            return isinstance(body, dict) and body.get("chain") == caip2
        if rule == "at_least":
            return isinstance(body, dict) and walk(body.get("of"))
        return rule in ("any", "all") and walk(body)

    return walk(gate)


def offer_sells_or_refuse(content: Content, kind: str, caip2: str, where: str) -> None:
    if not gate_sells(content.gate, kind, caip2):
        rule = offer_condition_kind(kind)
        raise Conflict(
            f'{where}: this content\'s gate has no {{"{rule}": {{"chain": "{caip2}"}}}} rule, so '
            "a buyer would pay and still not be let in; add the rule to the gate first.",
            reason="offer_cannot_open",
        )


def offer_output(offer: Offer) -> dict[str, Any]:
    """An offer as the API shows it."""
    return {
        "id": offer.pk,
        "chain": offer.offer_set.chain,
        "kind": offer.kind,
        "currency": {
            "address": offer.token or None,
            "symbol": offer.symbol,
            "decimals": offer.decimals,
        },
        "amount": str(offer.amount),
        "period_seconds": offer.period_seconds,
    }


def offer_set_output(offer_set: OfferSet) -> dict[str, Any]:
    return {
        "chain": offer_set.chain,
        "status": offer_set.status,
        "tx_hash": offer_set.tx_hash or None,
        "error": offer_set.error or None,
        "offers": [
            {**offer_output(offer), "id": offer.pk if offer_set.status == "live" else None}
            for offer in offer_set.offers.select_related("offer_set")
        ],
    }


# --- what the creator asks for --------------------------------------------------------------------


def _terms_parse(items: Any, chain_hint: Any) -> tuple[str, list[tuple[str, Terms]]]:
    """The chain and [(kind name, Terms)] of a PUT body's offers; DomainError (400) naming the
    offer at fault."""
    if not isinstance(items, list):
        raise DomainError('"offers" must be a list.', reason="offers")
    if len(items) > MAX_OFFERS:
        raise DomainError(f"At most {MAX_OFFERS} offers per content and chain.", reason="offers")
    named = [item.get("chain") for item in items if isinstance(item, dict)]
    if chain_hint is not None:
        named.append(chain_hint)
    # Strings checked first: a list or an object is not hashable (a 500 from set()).
    if not all(isinstance(c, str) for c in named) or len(set(named)) != 1:
        raise DomainError(
            'All offers of one request name the same "chain" (give "chain" with an empty list).',
            reason="offers",
        )
    caip2 = named[0]
    parsed = []
    for index, item in enumerate(items):
        where = f"offers[{index}]"
        if not isinstance(item, dict):
            raise DomainError(f"{where} must be an object.", reason="offers")
        unknown = set(item) - {"chain", "kind", "currency", "amount", "period_seconds"}
        if unknown:
            raise DomainError(f"{where}.{sorted(unknown)[0]}: unknown key.", reason="offers")
        kind = item.get("kind")
        if kind not in OfferKind.values:
            raise DomainError(
                f"{where}.kind must be one of {', '.join(OfferKind.values)}.", reason="offers"
            )
        currency = item.get("currency")
        if isinstance(currency, dict):  # the shape the API shows offers in
            currency = currency.get("address")
        if currency is not None and not (isinstance(currency, str) and is_address(currency)):
            raise DomainError(
                f"{where}.currency must be an ERC-20 address, or null for the native coin.",
                reason="offers",
            )
        if isinstance(currency, str) and int(currency, 16) == 0:
            currency = None
        amount = item.get("amount")
        if isinstance(amount, int) and not isinstance(amount, bool):
            amount = str(amount)
        # At most 78 digits (2**256 has 78): int() of a longer string may raise ValueError.
        if not (
            isinstance(amount, str) and amount.isascii() and amount.isdigit() and len(amount) <= 78
        ):
            raise DomainError(
                f"{where}.amount must be a whole number of the currency's smallest unit, as a "
                'decimal string (e.g. "10000000000000000" for 0.01 ETH).',
                reason="offers",
            )
        if not 0 < int(amount) < 2**256:
            raise DomainError(
                f"{where}.amount must be above 0 (and below 2**256).", reason="offers"
            )
        period = item.get("period_seconds", 0)
        if not isinstance(period, int) or isinstance(period, bool) or not 0 <= period <= MAX_PERIOD:
            raise DomainError(
                f"{where}.period_seconds must be a number of seconds up to {MAX_PERIOD}.",
                reason="offers",
            )
        if kind == OfferKind.PURCHASE and period:
            raise DomainError(
                f"{where}: a purchase is for ever (period_seconds 0); a rental has a period.",
                reason="offers",
            )
        if kind != OfferKind.PURCHASE and not period:
            raise DomainError(f"{where}: a {kind} needs period_seconds.", reason="offers")
        terms = Terms(
            kind=KIND_MEMBERSHIP if kind == OfferKind.MEMBERSHIP else KIND_ACCESS,
            token=to_checksum_address(currency) if currency else NATIVE,
            amount=int(amount),
            period=period,
        )
        parsed.append((kind, terms))
    return caip2, parsed


def _registration(content: Content, caip2: str) -> Registration:
    registration = (
        Registration.objects.filter(content=content, chain=caip2)
        .exclude(status=RegistrationStatus.FAILED)
        .select_related("contract")
        .first()
    )
    if registration is None or registration.status != RegistrationStatus.CONFIRMED:
        state = registration.status if registration else "not registered"
        raise Conflict(
            f"Offers on {caip2} need the content registered there first ({state}).",
            reason="not_registered",
        )
    return registration


def _creator_address(user, registration: Registration) -> str:
    creator = to_checksum_address(registration.creator)
    if creator not in user_addresses(user, registration.chain):
        raise Conflict(
            f"The registry on {registration.chain} records {creator} as this content's "
            "creator: only that wallet can sign its offers. Link it to your account.",
            reason="not_creator_wallet",
        )
    return creator


def _typed_data(offer_set: OfferSet) -> dict[str, Any]:
    return set_offers_typed_data(
        chain_id=chain(offer_set.chain).chain_id,
        registry=offer_set.registry.address,
        content_id=content_id_bytes32(offer_set.content_id),
        terms=[Terms(*terms) for terms in offer_set.terms],
        nonce=int(offer_set.nonce),
        deadline=offer_set.deadline,
    )


def offers_propose(*, content: Content, user, items: Any, chain_hint: Any = None) -> dict:
    """Check the offers and keep them as a draft; returns the typed data the creator signs."""
    caip2, parsed = _terms_parse(items, chain_hint)
    registration = _registration(content, caip2)
    for index, (kind, _) in enumerate(parsed):
        offer_sells_or_refuse(content, kind, caip2, f"offers[{index}]")
    creator = _creator_address(user, registration)
    web3 = market_web3(caip2)
    currencies: dict[str, Currency] = {}
    for _, terms in parsed:
        if terms.token not in currencies:
            currencies[terms.token] = currency_of(web3, caip2, terms.token)
    registry = contract_for(web3, "ContentRegistry", registration.contract.address)
    nonce = registry.functions.nonces(creator).call()
    terms_json = [list(terms.as_tuple()) for _, terms in parsed]
    with transaction.atomic():
        OfferSet.objects.filter(
            content=content, chain=caip2, status=OfferSetStatus.UNSIGNED
        ).delete()  # an older draft is void: only the latest one may be signed
        offer_set = OfferSet.objects.create(
            content=content,
            chain=caip2,
            registry=registration.contract,
            creator=creator,
            nonce=Decimal(nonce),
            deadline=int(time.time()) + SIGNATURE_SECONDS,
            terms=[[t[0], t[1], str(t[2]), t[3]] for t in terms_json],
            digest="",
        )
        for position, (kind, terms) in enumerate(parsed):
            currency = currencies[terms.token]
            Offer.objects.create(
                offer_set=offer_set,
                position=position,
                kind=kind,
                token="" if terms.token == NATIVE else terms.token,
                symbol=currency.symbol,
                decimals=currency.decimals,
                amount=Decimal(terms.amount),
                period_seconds=terms.period,
            )
        typed = _typed_data(offer_set)
        offer_set.digest = "0x" + typed_data_digest(typed).hex()
        OfferSet.objects.filter(pk=offer_set.pk).update(digest=offer_set.digest)
    return {"typed_data": typed, "signer": creator, "offer_set": offer_set}


def offers_sign(
    *, content: Content, user, items: Any, signature: Any, chain_hint: Any = None
) -> OfferSet:
    """The creator's signature over the draft with these offers: checked, then relayed."""
    caip2, parsed = _terms_parse(items, chain_hint)
    raw = relay_signature(signature)
    terms_json = [[t[0], t[1], str(t[2]), t[3]] for t in (terms.as_tuple() for _, terms in parsed)]
    draft = (
        OfferSet.objects.select_related("registry")
        .filter(content=content, chain=caip2, status=OfferSetStatus.UNSIGNED)
        .first()
    )
    if draft is None or draft.terms != terms_json or draft.deadline < time.time():
        raise Conflict(
            "No unsigned draft with these offers: send them without a signature first and sign "
            "the typed data that answers (within an hour).",
            reason="no_draft",
        )
    registration = _registration(content, caip2)
    _creator_address(user, registration)
    typed = _typed_data(draft)
    if not signed_by(draft, typed, raw):
        raise DomainError(
            f"This is not {draft.creator}'s signature of the offers' typed data.",
            reason="bad_signature",
        )
    with transaction.atomic():
        updated = OfferSet.objects.filter(pk=draft.pk, status=OfferSetStatus.UNSIGNED).update(
            status=OfferSetStatus.RELAYING, signature=signature, updated_at=timezone.now()
        )
        if not updated:
            raise Conflict("These offers are being relayed already.", reason="relaying")
        audit_record(
            event="chain.offers.signed",
            target=content,
            details={
                "offer_set_id": draft.pk,
                "chain": caip2,
                "creator": draft.creator,
                "terms": terms_json,
            },
        )
        enqueue_on_commit(tasks.chain_offers_relay, draft.pk)
    draft.refresh_from_db()
    return draft


def signed_by(offer_set: SignedConsent, typed: dict, signature: bytes) -> bool:
    """An EOA's ECDSA signature, or an ERC-1271 contract wallet's yes."""
    if typed_data_signer(typed, signature) == offer_set.creator:
        return True
    web3 = web3_for(offer_set.chain)
    if not web3.eth.get_code(offer_set.creator):
        return False
    wallet = web3.eth.contract(address=offer_set.creator, abi=ERC1271_ABI)
    try:
        answer = wallet.functions.isValidSignature(
            bytes.fromhex(offer_set.digest[2:]), signature
        ).call()
    except Exception:  # noqa: BLE001 - a wallet that reverts says no
        return False
    return bytes(answer) == ERC1271_MAGIC


# --- relaying -------------------------------------------------------------------------------------


def _call(offer_set: OfferSet, web3: Web3):
    registry = contract_for(web3, "ContentRegistry", offer_set.registry.address)
    return registry.functions.setOffers(
        content_id_bytes32(offer_set.content_id),
        [(int(k), to_checksum_address(t), int(a), int(p)) for k, t, a, p in offer_set.terms],
        int(offer_set.nonce),
        offer_set.deadline,
        bytes.fromhex(offer_set.signature[2:]),
    )


def offer_set_relay(*, offer_set_id: int) -> OfferSet | None:
    """Send a signed set with StreamGate's signer (apps/chain/relay.py)."""
    return relay_send(
        OfferSet,
        offer_set_id,
        _call,
        then=lambda pk: enqueue_on_commit_with(
            tasks.chain_offers_track, (pk,), options={"countdown": 1}
        ),
    )


def offer_set_track(*, offer_set_id: int) -> bool:
    """Watch a sent set's transaction until it is live (confirmed) or failed."""
    return relay_track(OfferSet, offer_set_id, _confirmed)


def _confirmed(offer_set: OfferSet, receipt, web3: Web3) -> None:
    registry = contract_for(web3, "ContentRegistry", offer_set.registry.address)
    for event in registry.events.OffersSet().process_receipt(receipt, errors=DISCARD):
        offer_set_live(
            caip2=offer_set.chain,
            content_id=uuid.UUID(bytes=bytes(event.args.contentId)[16:]),
            nonce=event.args.nonce,
            first_offer_id=event.args.firstOfferId,
            block_number=receipt["blockNumber"],
            tx_hash=receipt["transactionHash"].to_0x_hex(),
        )


def offer_set_live(
    *,
    caip2: str,
    content_id: uuid.UUID,
    nonce: int,
    first_offer_id: int,
    block_number: int,
    tx_hash: str,
) -> None:
    """The chain replaced a content's offers: the set our relay sent in ``tx_hash`` is live (if
    it is ours) and every other live set of the content there is superseded. Matched by the
    transaction, not the nonce alone: two sets signed with one nonce (a creator who signed
    again while the first was relaying, or who relayed other terms themselves) cannot both
    land, and showing the other one would sell terms the chain does not have."""
    with transaction.atomic():
        sets = OfferSet.objects.select_for_update().filter(content_id=content_id, chain=caip2)
        found = (
            sets.filter(nonce=Decimal(nonce), tx_hash=tx_hash.lower())
            .exclude(status__in=(OfferSetStatus.UNSIGNED, OfferSetStatus.FAILED))
            .first()
        )
        stale = sets.filter(status=OfferSetStatus.LIVE)
        if found is not None:
            stale = stale.exclude(pk=found.pk)
        stale.update(status=OfferSetStatus.SUPERSEDED, updated_at=timezone.now())
        if found is None or found.status == OfferSetStatus.LIVE:
            return
        OfferSet.objects.filter(pk=found.pk).update(
            status=OfferSetStatus.LIVE,
            first_offer_id=Decimal(first_offer_id),
            block_number=block_number,
            error="",
            updated_at=timezone.now(),
        )
        for offer in Offer.objects.filter(offer_set=found):
            Offer.objects.filter(pk=offer.pk).update(
                onchain_id=Decimal(first_offer_id + offer.position)
            )
        audit_record(
            event="chain.offers.live",
            target=("content.content", content_id),
            details={"offer_set_id": found.pk, "chain": caip2, "tx_hash": tx_hash.lower()},
        )
    logger.info("offers live", extra={"content": str(content_id), "chain": caip2})


def offer_sets_seen(caip2: str, events: list[ChainEvent]) -> None:
    """The indexer's hook: every ``OffersSet`` in a stored batch."""
    for event in events:
        if event.name == "OffersSet":
            offer_set_live(
                caip2=caip2,
                content_id=uuid.UUID(bytes=bytes.fromhex(event.args["contentId"][2:])[16:]),
                nonce=int(event.args["nonce"]),
                first_offer_id=int(event.args["firstOfferId"]),
                block_number=event.block_number,
                tx_hash=event.tx_hash,
            )
