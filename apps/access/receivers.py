"""What the access app does when other apps report events."""

from apps.access.ownership.cache import ownership_invalidate


def on_nft_transfer(*, chain: str, contract: str, accounts: list[str], **kwargs) -> None:
    """The indexer saw NFTs move: cached answers about those accounts are stale now."""
    ownership_invalidate(chain=chain, contract=contract, accounts=accounts)
