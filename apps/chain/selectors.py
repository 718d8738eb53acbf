"""Reads of on-chain state for the API."""

from typing import Any

from apps.chain.models import Pin, Registration, RegistrationStatus
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
