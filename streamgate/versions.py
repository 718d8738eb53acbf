"""Version numbers in the cache, for caches that must never serve what a write made stale.

A cached answer is stored under (or together with) the version numbers it depends on; a change
bumps the number, and every answer stored under the old one becomes unreachable at once. A
change bumps at once and again when its transaction commits, so a reader that queried between
the two cannot leave pre-commit data under the new version. A cache that fails is skipped,
never an error: the write goes on.
"""

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.core.cache import cache, caches
from django.db import models, transaction

logger = logging.getLogger(__name__)


def cache_is_redis() -> bool:
    """Whether the cache is Redis, whose INCR is atomic (the file cache's is a read and a write,
    so two bumps at once can land on one number)."""
    from django_redis.cache import RedisCache

    return isinstance(caches["default"], RedisCache)


def version_seed() -> int:
    """A new counter's first value: if one is lost (evicted, flushed) and created again, it
    must not come back to numbers that entries stored under the old one still hold."""
    return time.time_ns()


def version_bump(key: str) -> None:
    try:
        try:
            cache.incr(key)
        except ValueError:  # no version yet
            cache.add(key, version_seed(), timeout=None)
    except Exception as error:  # noqa: BLE001 - a cache outage must not fail the write
        logger.warning("cache version not bumped", extra={"key": key, "error": repr(error)})


def version_changed(key: str) -> None:
    """Make everything cached under ``key``'s current version stale (now, and on commit)."""
    version_bump(key)
    transaction.on_commit(partial(version_bump, key))


def versions_get(keys: list[str]) -> dict[str, int]:
    """The current versions of ``keys`` in one read (missing ones created)."""
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
