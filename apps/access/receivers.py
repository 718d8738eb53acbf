"""What the access app does when other apps report events."""

from apps.access.account import SESSION_GENERATION, session_generation_of
from apps.access.gates import REGISTRY
from apps.access.key_decisions import decisions_forget
from apps.access.ownership.cache import ownership_invalidate
from apps.content.audit import ANONYMOUS, audit_record
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


def on_password_signed_in(*, request, user, **kwargs) -> None:
    """Audit a password sign-in (the sign-in page, the admin). Only a user that
    ``authenticate()`` returned carries ``backend``; a wallet sign-in logs in a user it loaded
    itself, and is recorded by its service (with its method and account), not twice here."""
    if getattr(user, "backend", None):
        audit_record(
            event="auth.signin.succeeded",
            actor=user,
            target=user,
            details={"method": "password", "path": request.path[:200] if request else ""},
        )


def on_password_signin_failed(*, credentials, request=None, **kwargs) -> None:
    """Audit a refused password sign-in: the name tried (never the password) and whether
    django-axes refused it as locked out before any password was checked."""
    locked = bool(getattr(request, "axes_locked_out", False))
    audit_record(
        event="auth.signin.failed",
        actor=ANONYMOUS,
        details={
            "method": "password",
            "reason": "locked_out" if locked else "bad_credentials",
            "username": str((credentials or {}).get("username", ""))[:150],
            "path": request.path[:200] if request is not None else "",
        },
    )


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
