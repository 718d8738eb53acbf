"""Which EVM addresses speak for a user on a chain: the access app owns wallets and registers
the lookup here (``apps.chain`` sits below ``apps.access`` and may not import it).

The registry records a content's creator as the creator's own wallet, and only that wallet's
signature changes its offers or payout; buyers' transactions and sales are found by address.
"""

from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

WalletLookup = Callable[[AbstractBaseUser | AnonymousUser, str], list[str]]

_lookup: list[WalletLookup] = []


def wallet_lookup_register(lookup: WalletLookup) -> None:
    """Set the function answering a user's EIP-55 addresses on a CAIP-2 chain (oldest first)."""
    _lookup[:] = [lookup]


def user_addresses(user: AbstractBaseUser | AnonymousUser, caip2: str) -> list[str]:
    """The user's addresses that speak for them on ``caip2`` (none for anonymous callers)."""
    if not _lookup or not user.is_authenticated:
        return []
    return _lookup[0](user, caip2)
