"""Reads of on-chain state for the API."""

from typing import Any

from apps.chain.models import (
    ChainContract,
    ContractKind,
    OfferSetStatus,
    Pin,
    Registration,
    RegistrationStatus,
)
from apps.content.models import Content


def registration_current(content: Content) -> Registration | None:
    """The content's live registration (or, failing that, the latest failed one)."""
    registrations = sorted(
        content.registrations.all(),
        key=lambda r: (r.status != RegistrationStatus.FAILED, r.created_at),
        reverse=True,
    )
    return registrations[0] if registrations else None


def onchain_summary(content: Content) -> dict[str, Any] | None:
    registration = registration_current(content)
    if registration is None:
        return None
    return {
        "chain": registration.chain,
        "contract": registration.contract.address,
        "status": registration.status,
        "tx_hash": registration.tx_hash or None,
        "block": registration.block_number,
        "cid": registration.cid or None,
        "error": registration.error or None,
    }


def ipfs_summary(content: Content) -> dict[str, Any] | None:
    pins: list[Pin] = list(content.pins.all())
    if not pins:
        return None
    latest = max(pins, key=lambda pin: pin.created_at)
    return {"cid": latest.cid or None, "status": latest.status, "error": latest.error or None}


def offers_summary(content: Content) -> list[dict[str, Any]]:
    """The content's live offers as the API shows them (from prefetched sets and offers)."""
    from apps.chain.offers import offer_output

    found = []
    for offer_set in content.offer_sets.all():
        if offer_set.status == OfferSetStatus.LIVE:
            for offer in offer_set.offers.all():
                offer.offer_set = offer_set
                found.append(offer_output(offer))
    return found


def registry_addresses() -> dict[str, str]:
    """CAIP-2 -> the address of the ContentRegistry deployed there (the latest, if several)."""
    rows = ChainContract.objects.filter(kind=ContractKind.REGISTRY).order_by("created_at")
    return dict(rows.values_list("chain", "address"))
