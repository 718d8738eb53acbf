"""Reads about users, their credentials and their wallets."""

import contextlib

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.access.auth_version import AUTH_VERSION_KEY
from apps.access.gates import Wallet
from apps.access.models import CREATORS_GROUP, ApiToken, WalletAccount, WalletKind
from apps.access.tokens import token_hash
from streamgate.versions import versions_get


def user_is_creator(user: AbstractBaseUser | AnonymousUser) -> bool:
    """True for active users allowed to upload: superusers and members of the creators group."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=CREATORS_GROUP).exists()


TOKEN_CACHE_TTL = 60


def token_cache_key(key_hash: str) -> str:
    return f"access:token:{key_hash}"


def api_token_authenticate(token: str) -> ApiToken | None:
    """The live token matching ``token`` (not revoked, not expired, of an active user), with its
    user. Answers are cached for a minute under the auth version, which revoking a token and
    changing a user bump (``apps.access.auth_version``), so a cached answer is never one that
    such a change made wrong; expiry is checked on every use."""
    digest = token_hash(token)
    key = token_cache_key(digest)
    try:
        found = cache.get_many([AUTH_VERSION_KEY, key])
        version = found.get(AUTH_VERSION_KEY) or versions_get([AUTH_VERSION_KEY])[AUTH_VERSION_KEY]
    except Exception:  # noqa: BLE001 - the database answers alone
        return _token_lookup(digest)
    cached = found.get(key)
    if cached is not None and cached[0] == version:
        live = cached[1]
        if live.expires_at is None or live.expires_at > timezone.now():
            return live
    live = _token_lookup(digest)  # after reading the version: a change since makes it stale
    if live is not None:
        with contextlib.suppress(Exception):  # kept for next time if the cache takes it
            cache.set(key, (version, live), timeout=TOKEN_CACHE_TTL)
    return live


def _token_lookup(digest: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=digest, user__is_active=True, revoked_at=None)
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
