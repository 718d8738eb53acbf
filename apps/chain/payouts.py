"""Where a creator's proceeds go: the payout address they sign for (EIP-712 ``SetPayout``),
relayed to the registry like their offers (apps/chain/relay.py). Until they set one, proceeds
go to the creator address itself; ``withdraw`` only ever pays the registry's ``payoutOf``."""

import logging
import time
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from apps.chain import tasks
from apps.chain.accounts import user_addresses
from apps.chain.chains import chain, contract_for
from apps.chain.market_chains import market_web3
from apps.chain.models import ChainContract, ChainEvent, OfferSetStatus, PayoutChange
from apps.chain.purchases import creator_chains
from apps.chain.relay import relay_send, relay_signature, relay_track
from apps.chain.typed_data import set_payout_typed_data, typed_data_digest
from apps.content.audit import audit_record
from streamgate.celery import enqueue_on_commit, enqueue_on_commit_with
from streamgate.exceptions import Conflict, DomainError

logger = logging.getLogger(__name__)

SIGNATURE_SECONDS = 3600
Status = OfferSetStatus


def payout_output(change: PayoutChange) -> dict[str, Any]:
    return {
        "chain": change.chain,
        "account": change.creator,
        "payout": change.payout,
        "status": change.status,
        "tx_hash": change.tx_hash or None,
        "error": change.error or None,
    }


def payout_changes(*, user) -> list[dict[str, Any]]:
    """The newest signed payout change per chain and creator address of ``user``'s contents:
    relaying, submitted, live, or failed with the relay's error (what the sales page follows)."""
    latest: dict[tuple[str, str], PayoutChange] = {}
    for caip2, (_, creators) in sorted(creator_chains(user).items()):
        changes = PayoutChange.objects.filter(chain=caip2, creator__in=creators).exclude(
            status__in=(Status.UNSIGNED, Status.SUPERSEDED)
        )
        for change in changes:  # newest first
            latest.setdefault((caip2, change.creator), change)
    return [payout_output(change) for change in latest.values()]


def _parse(user, caip2: Any, payout: Any, account: Any) -> tuple[str, str, str, ChainContract]:
    chains = creator_chains(user)
    if not isinstance(caip2, str) or caip2 not in chains:
        raise DomainError("None of your contents is registered on that chain.", reason="chain")
    if not isinstance(payout, str) or not is_address(payout) or int(payout, 16) == 0:
        raise DomainError('"payout" must be a non-zero address.', reason="payout")
    registry_address, creators = chains[caip2]
    mine = sorted(set(creators) & set(user_addresses(user, caip2)))
    if account is not None:
        if not isinstance(account, str) or not is_address(account):
            raise DomainError('"account" must be an address.', reason="account")
        mine = [a for a in mine if a == to_checksum_address(account)]
    if not mine:
        raise Conflict(
            f"The registry on {caip2} records {', '.join(sorted(creators))} as your contents' "
            "creator: link that wallet to sign where its proceeds go.",
            reason="not_creator_wallet",
        )
    registry = ChainContract.objects.get(chain=caip2, address=registry_address)
    return caip2, mine[0], to_checksum_address(payout), registry


def _typed_data(change: PayoutChange) -> dict[str, Any]:
    return set_payout_typed_data(
        chain_id=chain(change.chain).chain_id,
        registry=change.registry.address,
        creator=change.creator,
        payout=change.payout,
        nonce=int(change.nonce),
        deadline=change.deadline,
    )


def payout_propose(*, user, caip2: Any, payout: Any, account: Any = None) -> dict[str, Any]:
    """Keep an unsigned change; returns the typed data the creator's wallet signs."""
    caip2, creator, payout, registry_row = _parse(user, caip2, payout, account)
    registry = contract_for(market_web3(caip2), "ContentRegistry", registry_row.address)
    nonce = registry.functions.nonces(creator).call()
    with transaction.atomic():
        PayoutChange.objects.filter(chain=caip2, creator=creator, status=Status.UNSIGNED).delete()
        change = PayoutChange.objects.create(
            chain=caip2,
            registry=registry_row,
            creator=creator,
            payout=payout,
            nonce=Decimal(nonce),
            deadline=int(time.time()) + SIGNATURE_SECONDS,
            digest="",
        )
        typed = _typed_data(change)
        change.digest = "0x" + typed_data_digest(typed).hex()
        PayoutChange.objects.filter(pk=change.pk).update(digest=change.digest)
    return {"typed_data": typed, "signer": creator}


def payout_sign(
    *, user, caip2: Any, payout: Any, signature: Any, account: Any = None
) -> PayoutChange:
    """The creator's signature over the unsigned change to ``payout``: checked, then relayed."""
    caip2, creator, payout, _ = _parse(user, caip2, payout, account)
    raw = relay_signature(signature)
    draft = (
        PayoutChange.objects.select_related("registry")
        .filter(chain=caip2, creator=creator, payout=payout, status=Status.UNSIGNED)
        .first()
    )
    if draft is None or draft.deadline < time.time():
        raise Conflict(
            "No unsigned change to this payout address: send it without a signature first and "
            "sign the typed data that answers (within an hour).",
            reason="no_draft",
        )
    from apps.chain.offers import signed_by

    if not signed_by(draft, _typed_data(draft), raw):
        raise DomainError(
            f"This is not {creator}'s signature of the payout's typed data.",
            reason="bad_signature",
        )
    with transaction.atomic():
        if not PayoutChange.objects.filter(pk=draft.pk, status=Status.UNSIGNED).update(
            status=Status.RELAYING, signature=signature, updated_at=timezone.now()
        ):
            raise Conflict("This change is being relayed already.", reason="relaying")
        audit_record(
            event="chain.payout.signed",
            target=draft,
            details={"chain": caip2, "creator": creator, "payout": payout},
        )
        enqueue_on_commit(tasks.chain_payout_relay, draft.pk)
    draft.refresh_from_db()
    return draft


def _call(change: PayoutChange, web3: Web3):
    registry = contract_for(web3, "ContentRegistry", change.registry.address)
    return registry.functions.setPayout(
        change.creator,
        change.payout,
        int(change.nonce),
        change.deadline,
        bytes.fromhex(change.signature[2:]),
    )


def payout_relay(*, change_id: int) -> PayoutChange | None:
    return relay_send(
        PayoutChange,
        change_id,
        _call,
        then=lambda pk: enqueue_on_commit_with(
            tasks.chain_payout_track, (pk,), options={"countdown": 1}
        ),
    )


def payout_track(*, change_id: int) -> bool:
    return relay_track(PayoutChange, change_id, _confirmed)


def _confirmed(change: PayoutChange, receipt, web3: Web3) -> None:
    registry = contract_for(web3, "ContentRegistry", change.registry.address)
    for event in registry.events.PayoutSet().process_receipt(receipt, errors=DISCARD):
        payout_live(
            caip2=change.chain,
            creator=event.args.creator,
            nonce=event.args.nonce,
            block_number=receipt["blockNumber"],
            tx_hash=receipt["transactionHash"].to_0x_hex(),
        )


def payout_live(*, caip2: str, creator: str, nonce: int, block_number: int, tx_hash: str) -> None:
    """The chain took the creator's change signed with ``nonce``, in ``tx_hash``: that change is
    live, older ones not (another change signed with the same nonce never landed)."""
    with transaction.atomic():
        changes = PayoutChange.objects.filter(chain=caip2, creator=to_checksum_address(creator))
        changes.filter(status=Status.LIVE).exclude(nonce=Decimal(nonce)).update(
            status=Status.SUPERSEDED, updated_at=timezone.now()
        )
        landed = changes.filter(nonce=Decimal(nonce), tx_hash=tx_hash.lower()).exclude(
            status__in=(Status.UNSIGNED, Status.FAILED, Status.LIVE)
        )
        for change in landed.select_for_update():
            audit_record(
                event="chain.payout.live",
                target=change,
                details={"chain": caip2, "creator": change.creator, "payout": change.payout},
            )
        landed.update(
            status=Status.LIVE, block_number=block_number, error="", updated_at=timezone.now()
        )


def payouts_seen(caip2: str, events: list[ChainEvent]) -> None:
    """The indexer's hook: every ``PayoutSet`` in a stored batch."""
    for event in events:
        if event.name == "PayoutSet":
            payout_live(
                caip2=caip2,
                creator=event.args["creator"],
                nonce=int(event.args["nonce"]),
                block_number=event.block_number,
                tx_hash=event.tx_hash,
            )
