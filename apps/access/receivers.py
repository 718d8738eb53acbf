"""What the access app does when other apps report events."""

from apps.access.account import SESSION_GENERATION, session_generation_of
from apps.access.gates import REGISTRY
from apps.access.ownership.cache import ownership_invalidate


def on_nft_transfer(*, chain: str, contract: str, accounts: list[str], **kwargs) -> None:
    """The indexer saw NFTs move: cached answers about those accounts are stale now."""
    ownership_invalidate(chain=chain, contract=contract, accounts=accounts)


def on_registry_access_changed(*, chain: str, accounts: list[str], **kwargs) -> None:
    """A purchase, rental, membership or grant changed what those accounts may watch."""
    ownership_invalidate(chain=chain, contract=REGISTRY, accounts=accounts)


def on_user_logged_in(*, request, user, **kwargs) -> None:
    """Stamp a new session with its owner's session generation (sign out everywhere)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_GENERATION] = session_generation_of(user)
