"""Access errors, mapped to HTTP by streamgate.api_errors.api_exception_handler."""

from streamgate.exceptions import Conflict, NotAllowed, Unauthenticated, Unavailable


class SignInFailed(Unauthenticated):
    """A sign-in message, its signature or its nonce was refused (401 with a reason)."""


class SignInRequired(Unauthenticated):
    """The content is gated: the caller must sign in with a wallet first."""


class WalletTaken(Conflict):
    """The wallet is already linked to another user."""


class AccessDenied(NotAllowed):
    """The gate said no."""


class ChainUnavailable(Unavailable):
    """A chain that decides the gate (or verifies a contract wallet) did not answer."""
