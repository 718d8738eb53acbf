"""What bearer-token answers are cached under, and what makes them stale.

Two caches answer for a bearer token without PostgreSQL: the token lookup itself
(``selectors.api_token_authenticate``, one entry per token) and the edge's API pages. Both
store the auth version with their answer and use it only while it is unchanged. It moves when a
token is revoked, expires differently or is deleted, and when a user changes (deactivated, made
staff, renamed) or is deleted; creating a token or a user, recording a token's use and a login's
time do not move it, as they make no cached answer wrong. The changed tokens' own lookup entries
are also deleted, now and on commit, so that one lost bump (a cache error in the writing
process) does not keep a revoked token alive. A bulk ``User.objects.update(...)`` sends no
signal: deactivate users with ``save()`` (the admin does), or their tokens' cached answers live
out their TTL (60 s).
"""

import contextlib
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import models, transaction

from streamgate.versions import AUTH_VERSION_KEY, version_changed

# AUTH_VERSION_KEY is the edge's (streamgate.versions); access bumps it on every auth change.
QUIET_TOKEN_FIELDS = frozenset({"last_used_at"})


def token_cache_key(key_hash: str) -> str:
    return f"access:token:{key_hash}"


def auth_changed() -> None:
    version_changed(AUTH_VERSION_KEY)


def tokens_changed(key_hashes: Iterable[str]) -> None:
    """These tokens changed: every cached answer for any token is stale, and theirs are gone."""
    auth_changed()
    forget = partial(_forget, [token_cache_key(h) for h in key_hashes])
    forget()
    transaction.on_commit(forget)


def _forget(keys: list[str]) -> None:
    with contextlib.suppress(Exception):  # the version bump covers it (or the TTL, at worst)
        cache.delete_many(keys)


class ApiTokenQuerySet(models.QuerySet):
    """Bulk writes, which send no signals, still make cached answers stale."""

    def update(self, **kwargs: Any) -> int:
        if set(kwargs) <= QUIET_TOKEN_FIELDS:
            return super().update(**kwargs)
        hashes = list(self.values_list("key_hash", flat=True))
        changed = super().update(**kwargs)
        if changed:
            tokens_changed(hashes)
        return changed

    def bulk_update(self, objs, fields, *args: Any, **kwargs: Any):
        updated = super().bulk_update(objs, fields, *args, **kwargs)
        if not set(fields) <= QUIET_TOKEN_FIELDS:
            tokens_changed(obj.key_hash for obj in objs)
        return updated

    def delete(self):
        hashes = list(self.values_list("key_hash", flat=True))
        result = super().delete()
        tokens_changed(hashes)
        return result


def on_token_saved(*, instance, created: bool, update_fields=None, **_) -> None:
    if not created and set(update_fields or ()) != QUIET_TOKEN_FIELDS:
        tokens_changed([instance.key_hash])


def on_token_deleted(*, instance, **_) -> None:
    tokens_changed([instance.key_hash])


def on_user_saved(*, instance, created: bool, update_fields=None, **_) -> None:
    if not created and set(update_fields or ()) != {"last_login"}:
        tokens_changed(instance.api_tokens.values_list("key_hash", flat=True))


def on_user_deleted(**_) -> None:
    auth_changed()  # its tokens went first, each with its own signal
