"""Reads about users, their credentials and their wallets."""

import copy
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import BigIntegerField, F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.access.gates import Wallet, gate_validate
from apps.access.models import ApiToken, WalletAccount, WalletKind
from apps.access.tokens import token_hash
from apps.chain.chains import configured_chains
from streamgate.versions import AUTH, Remembered

# Tokens by hash, while the ``auth`` version they were read under stands: it moves with every
# revocation, expiry change, deletion and change to a user (streamgate/versions.py).
_TOKENS = Remembered()


def api_token_authenticate(token: str) -> ApiToken | None:
    """The live token matching ``token`` (not revoked, not expired, of an active user), with its
    user. (Reads the edge answers never get here: streamgate/edge.py.)

    Every bearer request asks, and building the ORM's SQL costs more than running it: the row,
    found by its unique hash, is remembered by this process while ``auth`` stands, so a repeat
    costs one version query; expiry is judged here at every request."""
    digest = token_hash(token)
    found = _TOKENS.get(digest, [AUTH], lambda: _token_row(digest), clone=_token_copy)
    if found is None:
        return None
    expired = found.expires_at is not None and found.expires_at <= timezone.now()
    if found.revoked_at is not None or expired or not found.user.is_active:
        return None
    return found


def api_token_used(token: ApiToken) -> None:
    """Keep the remembered row's last use in step with the one ``api_token_touch`` wrote."""
    used = token.last_used_at
    _TOKENS.update(token.key_hash, lambda kept: setattr(kept, "last_used_at", used))


def _token_row(digest: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user").filter(key_hash=digest).first()


def _token_copy(token: ApiToken) -> ApiToken:
    clone = copy.copy(token)
    clone.user = copy.copy(token.user)
    return clone


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


def user_evm_addresses(user: User | AnonymousUser, caip2: str) -> list[str]:
    """The user's EIP-55 addresses that speak for them on the EVM chain ``caip2``, oldest
    first (key-held ones anywhere; contract wallets where they were verified)."""
    return [w.address for w in viewer_wallets(user) if w.holds_on(caip2)]


def gate_chains() -> list[str]:
    """The chains a gate may name in a token condition: those this server has an RPC for."""
    return configured_chains()


def gate_normal_form(gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rule's normal form (None: anyone may watch), or GateInvalid: registered as the
    core's gate normaliser."""
    return gate_validate(gate, chains=gate_chains())


def content_order_by_views(contents: QuerySet) -> QuerySet:
    """``contents`` most viewed first (the rolled-up count; none yet counts as 0), then newest."""
    return contents.annotate(
        view_count=Coalesce(F("view_stats__views"), Value(0), output_field=BigIntegerField())
    ).order_by(F("view_count").desc(), "-created_at", "-id")
