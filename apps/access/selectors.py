"""Reads about users, their credentials and their wallets."""

import contextlib
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.access.auth_version import AUTH_VERSION_KEY, token_cache_key
from apps.access.gates import Wallet, gate_validate
from apps.access.models import ApiToken, WalletAccount, WalletKind
from apps.access.tokens import token_hash
from apps.chain.chains import configured_chains
from streamgate.versions import cache_is_redis, versions_get

TOKEN_CACHE_TTL = 60
# What a cached lookup keeps: the token's columns (its hash, not its secret) and the user's
# identity and flags; the user's other fields (the password hash among them) load on access.
TOKEN_FIELDS = (
    "id",
    "user_id",
    "name",
    "prefix",
    "key_hash",
    "source",
    "wallet_id",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)
USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def api_token_authenticate(token: str) -> ApiToken | None:
    """The live token matching ``token`` (not revoked, not expired, of an active user), with its
    user. With Redis, lookups are cached for a minute under the auth version, which revoking a
    token and changing a user bump (``apps.access.auth_version``, which also deletes the
    changed tokens' entries); expiry is checked on every use."""
    digest = token_hash(token)
    if not cache_is_redis():  # atomic counters only there
        return _token_lookup(digest)
    key = token_cache_key(digest)
    try:
        found = cache.get_many([AUTH_VERSION_KEY, key])
        version = found.get(AUTH_VERSION_KEY) or versions_get([AUTH_VERSION_KEY])[AUTH_VERSION_KEY]
    except Exception:  # noqa: BLE001 - the database answers alone
        return _token_lookup(digest)
    cached = found.get(key)
    if cached is not None and cached[0] == version:
        hit = _token_from(cached[1], cached[2])
        if hit.expires_at is None or hit.expires_at > timezone.now():
            return hit
    live = _token_lookup(digest)  # after reading the version: a change since makes it stale
    if live is not None:
        entry = (
            version,
            tuple(getattr(live, name) for name in _in_model_order(ApiToken, TOKEN_FIELDS)),
            tuple(getattr(live.user, name) for name in _in_model_order(live.user, USER_FIELDS)),
        )
        with contextlib.suppress(Exception):  # kept for next time if the cache takes it
            cache.set(key, entry, timeout=TOKEN_CACHE_TTL)
    return live


def _in_model_order(model, names: tuple[str, ...]) -> list[str]:
    """``names`` in the order of the model's columns, the order ``Model.from_db`` reads."""
    return [f.attname for f in model._meta.concrete_fields if f.attname in names]


def _token_from(token_values: tuple, user_values: tuple) -> ApiToken:
    user_model = get_user_model()
    token = ApiToken.from_db(
        DEFAULT_DB_ALIAS, _in_model_order(ApiToken, TOKEN_FIELDS), token_values
    )
    token.user = user_model.from_db(
        DEFAULT_DB_ALIAS, _in_model_order(user_model, USER_FIELDS), user_values
    )
    return token


def _token_lookup(digest: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=digest, user__is_active=True, revoked_at=None)
        .filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))
        .first()
    )


def api_tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("wallet").order_by("-created_at")


def wallets_of(user: User) -> QuerySet[WalletAccount]:
    return WalletAccount.objects.filter(user=user).order_by("created_at")


def viewer_wallets(user: User | AnonymousUser) -> list[Wallet]:
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


def gate_chains() -> list[str]:
    """The chains a gate may name in a token condition: those this server has an RPC for."""
    return configured_chains()


def gate_normal_form(gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rule's normal form (None: anyone may watch), or GateInvalid: registered as the
    core's gate normaliser."""
    return gate_validate(gate, chains=gate_chains())
