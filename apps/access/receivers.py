"""What the access app does when other apps report events."""

from apps.access.account import SESSION_GENERATION, session_generation_of
from apps.access.gates import REGISTRY
from apps.access.key_decisions import decisions_forget
from apps.access.ownership.cache import ownership_invalidate
from apps.transcode.models import DeliveryEncryption, TranscodeJob


def on_nft_transfer(*, chain: str, contract: str, accounts: list[str], **kwargs) -> None:
    """The indexer saw NFTs move: cached answers about those accounts are stale now."""
    ownership_invalidate(chain=chain, contract=contract, accounts=accounts)
    decisions_forget()  # the chains' generation: key decisions read ownership answers


def on_registry_access_changed(*, chain: str, accounts: list[str], **kwargs) -> None:
    """A purchase, rental, membership or grant changed what those accounts may watch."""
    ownership_invalidate(chain=chain, contract=REGISTRY, accounts=accounts)
    decisions_forget()


def on_user_logged_in(*, request, user, **kwargs) -> None:
    """Stamp a new session with its owner's session generation (sign out everywhere)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_GENERATION] = session_generation_of(user)


def on_content_written(*, sender, instance, **kwargs) -> None:
    """A content (its gate, owner, published job) or its keys changed: forget key decisions."""
    content_id = instance.pk
    if isinstance(instance, DeliveryEncryption):
        content_id = (
            TranscodeJob.objects.filter(pk=instance.job_id)
            .values_list("content_id", flat=True)
            .first()
        )
        if content_id is None:
            return  # its job (and content) are gone: nothing can ask for its key again
    decisions_forget(content_id=str(content_id))


def on_viewer_written(*, sender, instance, **kwargs) -> None:
    """A user or one of their wallets changed: forget their key decisions."""
    decisions_forget(viewer=getattr(instance, "user_id", None) or instance.pk)
