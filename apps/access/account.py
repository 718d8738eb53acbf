"""What a signed-in user does to their own account besides wallets: API tokens they name, and
signing out everywhere. (Wallet linking and unlinking are in services.py, next to sign-in.)"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.access.models import (
    SIGN_IN_SOURCES,
    ApiToken,
    SessionGeneration,
    TokenSource,
    WalletAccount,
)
from apps.access.services import api_token_create
from apps.content.audit import audit_record
from apps.content.scopes import scopes_all, scopes_parse
from streamgate.exceptions import NotAllowed

SESSION_GENERATION = "sg_generation"  # the session key holding the generation it was opened in


def account_token_create(
    *,
    user: User,
    name: str,
    expires_in: timedelta | None = None,
    wallet_id: int | None = None,
    scopes: Iterable[str] | None = None,
    held_scopes: Iterable[str] | None = None,
) -> tuple[ApiToken, str]:
    """A named API token for ``user``; returns it and its clear value, shown once, never kept.
    ``wallet_id``: the wallet behind the credential asking (the session's sign-in wallet, or a
    token's), which the new token then hangs on: whoever held a wallet, say a stolen one, cannot
    mint a token that outlives its unlinking.

    ``scopes``: what the new token may do (None: all the asker holds). ``held_scopes``: the
    scopes of the token asking (None for a session, which holds all): a token cannot mint one
    that may do more than itself (NotAllowed ``scope_escalation``, naming what it lacks)."""
    held = scopes_all() if held_scopes is None else sorted(held_scopes)
    chosen = held if scopes is None else scopes_parse(scopes)
    beyond = sorted(set(chosen) - set(held))
    if beyond:
        raise NotAllowed(
            f"This token cannot create a token with scopes it lacks: {', '.join(beyond)}.",
            reason="scope_escalation",
            extra={"scopes": beyond},
        )
    expires_at = timezone.now() + expires_in if expires_in else None
    wallet = WalletAccount.objects.filter(pk=wallet_id, user=user).first() if wallet_id else None
    return api_token_create(
        user=user,
        name=name,
        expires_at=expires_at,
        source=TokenSource.ACCOUNT,
        wallet=wallet,
        scopes=chosen,
    )


def session_generation_of(user: AbstractBaseUser) -> int:
    """The generation a session of ``user`` must carry to stand (0 until a first sign-out)."""
    found = SessionGeneration.objects.filter(user_id=user.pk).values_list("generation", flat=True)
    return found.first() or 0


@dataclass(frozen=True)
class SignedOutEverywhere:
    generation: int
    tokens_revoked: int
    at: datetime


@transaction.atomic
def account_sign_out_everywhere(*, user: User, revoke_api_tokens: bool) -> SignedOutEverywhere:
    """End every browser session of ``user`` (they carry an older generation from now on) and
    revoke the tokens wallet sign-ins issued, which stand for signed-in devices too; with
    ``revoke_api_tokens``, every other token of theirs as well. Takes effect at the next
    request of each device, since token revocation moves the ``auth`` version at commit."""
    now = timezone.now()
    SessionGeneration.objects.get_or_create(user=user)
    SessionGeneration.objects.filter(user=user).update(generation=F("generation") + 1)
    live = Q(expires_at=None) | Q(expires_at__gt=now)
    tokens = ApiToken.objects.filter(live, user=user, revoked_at=None)
    if not revoke_api_tokens:
        tokens = tokens.filter(source__in=SIGN_IN_SOURCES)
    revoked = tokens.update(revoked_at=now)
    audit_record(
        event="auth.signout.everywhere",
        target=user,
        details={"tokens_revoked": revoked, "all_api_tokens": revoke_api_tokens},
    )
    return SignedOutEverywhere(
        generation=session_generation_of(user), tokens_revoked=revoked, at=now
    )
