"""What an ownership question answers, and which of a viewer's accounts it asks about."""

from dataclasses import dataclass

from apps.access.gates import Condition, Wallet


@dataclass(frozen=True)
class Answer:
    """Whether any of the viewer's wallets holds what a condition asks (None: unknown)."""

    held: bool | None
    source: str  # cache | rpc | wallets | error
    note: str = ""
    # When a "holds" stops being true by itself (a rental's or membership's end, unix time);
    # None: until something changes on chain.
    until: float | None = None


class OwnershipUnavailable(Exception):
    """The chain's node did not answer (timeout, error, no RPC configured)."""


def accounts_for(condition: Condition, wallets: list[Wallet]) -> list[str]:
    """The addresses of ``wallets`` that speak for the viewer on the condition's chain."""
    return sorted({wallet.address for wallet in wallets if wallet.holds_on(condition.chain)})
