"""Version numbers in the cache, for caches that must never serve what a write made stale.

A cached answer is stored under (or together with) the version numbers it depends on; a change
bumps the number, and every answer stored under the old one becomes unreachable at once. A
change bumps at once and again when its transaction commits, so a reader that queried between
the two cannot leave pre-commit data under the new version. A cache that fails is skipped,
never an error: the write goes on, and its bump is made again once the cache answers.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.core.cache import cache, caches
from django.db import models, transaction

logger = logging.getLogger(__name__)

# The version every change of who may do what bumps (access's tokens and users); the edge
# replays no answer stored before the latest bump.
AUTH_VERSION_KEY = "access:auth-version"
# How long a cached answer is kept: the content API's page cache and the edge's entries.
PAGE_TTL = 60


def cache_is_redis() -> bool:
    """Whether the cache is Redis, whose INCR is atomic (the file cache's is a read and a write,
    so two bumps at once can land on one number)."""
    from django_redis.cache import RedisCache

    return isinstance(caches["default"], RedisCache)


def version_seed() -> int:
    """A new counter's first value: if one is lost (evicted, flushed) and created again, it
    must not come back to numbers that entries stored under the old one still hold."""
    return time.time_ns()


# Bumps that failed (the cache was away). Until they are made, a page stored before the write
# could be served once the cache is back (for up to its TTL): a thread retries them every
# RETRY_SECONDS, the next version read makes them first, and the edge replays nothing meanwhile.
RETRY_SECONDS = 1.0
_unbumped: set[str] = set()
_retrying = threading.Lock()


def _bump(key: str) -> None:
    try:
        cache.incr(key)
    except ValueError:  # no version yet
        cache.add(key, version_seed(), timeout=None)


def _bump_missed() -> None:
    while _unbumped:
        key = _unbumped.pop()
        try:
            _bump(key)
        except Exception:  # noqa: BLE001 - still away: kept for the next try
            _unbumped.add(key)
            return


def _retry_until_bumped() -> None:
    with _retrying:
        while _unbumped:
            time.sleep(RETRY_SECONDS)
            _bump_missed()


def versions_unbumped() -> bool:
    """Whether this process holds bumps it could not make yet (the cache was away)."""
    return bool(_unbumped)


def version_bump(key: str) -> None:
    try:
        _bump(key)
    except Exception as error:  # noqa: BLE001 - a cache outage must not fail the write
        _unbumped.add(key)
        logger.warning("cache version not bumped", extra={"key": key, "error": repr(error)})
        if not _retrying.locked():
            threading.Thread(target=_retry_until_bumped, name="version-bumps", daemon=True).start()
        return
    _bump_missed()


def version_changed(key: str) -> None:
    """Make everything cached under ``key``'s current version stale (now, and on commit)."""
    version_bump(key)
    transaction.on_commit(partial(version_bump, key))


def versions_get(keys: list[str]) -> dict[str, int]:
    """The current versions of ``keys`` in one read (missing ones created); bumps missed while
    the cache was away are made first."""
    _bump_missed()
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            seed = version_seed()
            cache.add(key, seed, timeout=None)
            found[key] = cache.get(key, seed)
    return {key: found[key] for key in keys}


def tracking_queryset(
    on_change: Callable[[], None], *, quiet_fields: Iterable[str] = ()
) -> type[models.QuerySet]:
    """A QuerySet class whose bulk writes, which send no model signals, call ``on_change``;
    an ``update`` of only ``quiet_fields`` (bookkeeping no cached answer shows) does not."""
    quiet = frozenset(quiet_fields)

    class ChangeTrackingQuerySet(models.QuerySet):
        def update(self, **kwargs: Any) -> int:
            changed = super().update(**kwargs)
            if changed and not set(kwargs) <= quiet:
                on_change()
            return changed

        def delete(self):
            result = super().delete()
            on_change()
            return result

        def bulk_create(self, *args: Any, **kwargs: Any):
            created = super().bulk_create(*args, **kwargs)
            on_change()
            return created

        def bulk_update(self, objs, fields, *args: Any, **kwargs: Any):
            updated = super().bulk_update(objs, fields, *args, **kwargs)
            if not set(fields) <= quiet:
                on_change()
            return updated

    return ChangeTrackingQuerySet
