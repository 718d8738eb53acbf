"""Cached JSON of the content API's reads (list and detail), invalidated by any change.

Every change to a content or to what its JSON shows (renditions, registrations, contracts,
pins) bumps one version number in the cache, through model signals and the QuerySet methods
that skip them (update, delete, bulk_create, bulk_update). Pages are cached under the version,
the caller's visibility (anonymous, or the user: visibility depends on who asks) and the exact
URL, so a change makes every older page unreachable at once. The bump happens at once and
again when the transaction commits: a reader that queried between the two cannot leave
pre-commit data under the new version. A cache that fails is skipped, never an error.
"""

import logging
from typing import Any

from django.core.cache import cache
from django.db import models, transaction
from rest_framework.request import Request

logger = logging.getLogger(__name__)

VERSION_KEY = "content:api-version"
PAGE_TTL = 60


def _bump() -> None:
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet
            cache.add(VERSION_KEY, 1, timeout=None)
    except Exception as error:  # noqa: BLE001 - a cache outage must not fail the write
        logger.warning("content cache version not bumped", extra={"error": repr(error)})


def content_api_changed() -> None:
    """Make every cached content page stale (now, and again when the transaction commits)."""
    _bump()
    transaction.on_commit(_bump)


class ChangeTrackingQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes, which send no signals, still invalidate cached pages."""

    def update(self, **kwargs: Any) -> int:
        changed = super().update(**kwargs)
        if changed:
            content_api_changed()
        return changed

    def delete(self):
        result = super().delete()
        content_api_changed()
        return result

    def bulk_create(self, *args: Any, **kwargs: Any):
        created = super().bulk_create(*args, **kwargs)
        content_api_changed()
        return created

    def bulk_update(self, *args: Any, **kwargs: Any):
        updated = super().bulk_update(*args, **kwargs)
        content_api_changed()
        return updated


def page_key(kind: str, request: Request) -> str | None:
    """The cache key of this request's page, or None when the cache cannot be read."""
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            cache.add(VERSION_KEY, 1, timeout=None)
            version = cache.get(VERSION_KEY, 1)
    except Exception as error:  # noqa: BLE001 - read from the database instead
        logger.warning("content cache unavailable", extra={"error": repr(error)})
        return None
    user = request.user
    scope = f"u{user.pk}" if user.is_authenticated else "anon"
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.items()))
    return (
        f"content:api:{version}:{kind}:{scope}:{request.build_absolute_uri(request.path)}?{query}"
    )


def page_get(key: str | None) -> Any:
    if key is None:
        return None
    try:
        return cache.get(key)
    except Exception:  # noqa: BLE001
        return None


def page_set(key: str | None, data: Any) -> None:
    if key is None:
        return
    try:
        cache.set(key, data, timeout=PAGE_TTL)
    except Exception as error:  # noqa: BLE001 - the page was served; caching it is optional
        logger.warning("content page not cached", extra={"error": repr(error)})
