"""Reads about users, their credentials and their wallets."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.access.gates import Wallet
from apps.access.models import CREATORS_GROUP, ApiToken, WalletAccount, WalletKind
from apps.access.tokens import token_hash


def user_is_creator(user: AbstractBaseUser | AnonymousUser) -> bool:
    """True for active users allowed to upload: superusers and members of the creators group."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=CREATORS_GROUP).exists()


def api_token_authenticate(token: str) -> ApiToken | None:
    """The live token matching ``token`` (not revoked, not expired, of an active user)."""
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(token), user__is_active=True, revoked_at=None)
        .filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))
        .first()
    )


def api_tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("wallet").order_by("-created_at")


def wallets_of(user: AbstractBaseUser) -> QuerySet[WalletAccount]:
    return WalletAccount.objects.filter(user=user).order_by("created_at")


def viewer_wallets(user: AbstractBaseUser | AnonymousUser) -> list[Wallet]:
    """The user's wallets as gates see them (none for anonymous callers)."""
    if not user.is_authenticated:
        return []
    return [
        Wallet(
            namespace=namespace,
            address=address,
            chain=chain if kind == WalletKind.CONTRACT else "",
        )
        for namespace, address, chain, kind in WalletAccount.objects.filter(
            user_id=user.pk
        ).values_list("namespace", "address", "chain", "kind")
    ]
