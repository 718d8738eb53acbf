"""Webhook events of the chain app: a registration confirmed, a purchase indexed.

Both can be seen more than once (the registration's own watcher and the indexer both confirm
it; an indexer replays a batch after a restart), so each event carries a key and the second
announcement is not written. Call inside the transaction that records what is announced.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from apps.chain.models import ChainEvent, Registration
from apps.content.models import Content
from apps.content.webhooks.events import content_data
from apps.content.webhooks.services import webhook_event_emit

FOREVER = 2**64 - 1  # the registry's "never expires"


def registration_confirmed_announce(*, registration_id: int) -> None:
    """``registration.confirmed`` for the registration, once per confirmed transaction."""
    registration = (
        Registration.objects.select_related("content", "contract")
        .filter(pk=registration_id)
        .first()
    )
    if registration is None:
        return
    content = registration.content
    webhook_event_emit(
        event_type="registration.confirmed",
        owner_id=content.owner_id,
        content_id=content.id,
        key=f"registration.confirmed:{registration.pk}:{registration.tx_hash}",
        data={
            **content_data(content),
            "registration": {
                "id": registration.pk,
                "chain": registration.chain,
                "contract": registration.contract.address,
                "tx_hash": registration.tx_hash,
                "block_number": registration.block_number,
                "cid": registration.cid,
            },
        },
    )


def _content_of(content_key: Any) -> uuid.UUID | None:
    """The content id a registry event's bytes32 ``contentId`` holds (its last 16 bytes)."""
    try:
        return uuid.UUID(bytes=bytes.fromhex(str(content_key).removeprefix("0x"))[-16:])
    except ValueError:
        return None


def purchases_announce(*, caip2: str, events: list[ChainEvent]) -> None:
    """``access.purchased`` for every AccessPurchased event of ours among ``events``."""
    for event in events:
        if event.name != "AccessPurchased":
            continue
        args = event.args
        content = Content.objects.filter(pk=_content_of(args.get("contentId"))).first()
        if content is None:
            continue  # a content of another deployment using the same registry
        expires_at = int(str(args.get("expiresAt", FOREVER)))
        kind = int(args.get("kind", 0))
        webhook_event_emit(
            event_type="access.purchased",
            owner_id=content.owner_id,
            content_id=content.id,
            key=f"access.purchased:{caip2}:{event.tx_hash}:{event.log_index}",
            data={
                **content_data(content),
                "purchase": {
                    "chain": caip2,
                    "tx_hash": event.tx_hash,
                    "log_index": event.log_index,
                    "block_number": event.block_number,
                    "buyer": args.get("buyer"),
                    "kind": "membership"
                    if kind == 1
                    else ("purchase" if expires_at == FOREVER else "rental"),
                    "token": args.get("token"),
                    "amount": str(args.get("amount")),
                    "fee": str(args.get("fee")),
                    "expires_at": None
                    if expires_at == FOREVER
                    else datetime.fromtimestamp(expires_at, tz=UTC).isoformat(),
                },
            },
        )
