"""Cached JSON of the content API's reads (list and detail), invalidated by any change.

Pages are cached under version numbers (``streamgate.versions``), the caller and the exact
URL, so a change makes every older page unreachable at once. Which versions a page depends on
follows from who may see what:

- ``content:api-version``: everything anyone may see. Any change to a content or to what its
  JSON shows (renditions, registrations, contracts, pins) bumps it, through model signals and
  the QuerySet methods that skip them (update, delete, bulk_create, bulk_update).
- ``content:api-version:owner:<id>``: an unpublished content's progress, which only its owner
  (and staff) can see. Uploads and encodes write progress several times a second; bumping the
  first version for those would empty every viewer's cache all day long.
- ``content:api-version:private``: bumped with any owner's, for staff, who see everything.

Anonymous pages depend on the first; a user's on the first and their own; staff's on the first
and the private one. A cache that fails is skipped, never an error.
"""

import logging
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import models
from rest_framework.request import Request

from apps.content.status import ContentStatus
from streamgate.versions import PAGE_TTL, tracking_queryset, version_changed, versions_get

logger = logging.getLogger(__name__)

VERSION_KEY = "content:api-version"
PRIVATE_VERSION_KEY = "content:api-version:private"
# Fields whose change on an unpublished content only its owner and staff can see.
PRIVATE_FIELDS = frozenset({"progress"})


def owner_version_key(owner_id: int) -> str:
    return f"{VERSION_KEY}:owner:{owner_id}"


def content_api_changed() -> None:
    """Make every cached content page stale (now, and again when the transaction commits)."""
    version_changed(VERSION_KEY)


def content_private_changed(owner_ids: set[int]) -> None:
    """Make the pages of these owners (and of staff) stale, and no one else's."""
    for owner_id in owner_ids:
        version_changed(owner_version_key(owner_id))
    version_changed(PRIVATE_VERSION_KEY)


# A QuerySet whose bulk writes, which send no signals, still invalidate cached pages.
ChangeTrackingQuerySet = tracking_queryset(content_api_changed)


class ContentQuerySet(ChangeTrackingQuerySet):
    def update(self, **kwargs: Any) -> int:
        if not kwargs or not set(kwargs) <= PRIVATE_FIELDS:
            return super().update(**kwargs)
        # Unpublished rows first, then published ones, each an UPDATE of its own (untracked:
        # the bumps follow). A row published in between is updated by both, so both bump.
        unpublished = self.exclude(status=ContentStatus.READY)
        owners = set(unpublished.values_list("owner_id", flat=True))
        changed = models.QuerySet.update(unpublished, **kwargs)
        if changed:
            content_private_changed(owners)
        published = models.QuerySet.update(self.filter(status=ContentStatus.READY), **kwargs)
        if published:
            content_api_changed()
        return changed + published


def page_versions(user) -> dict[str, int] | None:
    """The versions a page for ``user`` depends on, to be read before the page's query; None
    when the cache cannot be read (the page is then neither read from nor written to it)."""
    names = [VERSION_KEY]
    if user.is_authenticated:
        names.append(PRIVATE_VERSION_KEY if user.is_staff else owner_version_key(user.pk))
    try:
        return versions_get(names)
    except Exception as error:  # noqa: BLE001 - read from the database instead
        logger.warning("content cache unavailable", extra={"error": repr(error)})
        return None


def public_versions(versions: dict[str, int] | None) -> dict[str, int] | None:
    """The part of ``versions`` a page anyone would get the same way depends on."""
    return None if versions is None else {VERSION_KEY: versions[VERSION_KEY]}


def page_key(
    kind: str, request: Request, versions: dict[str, int] | None, *, public: bool
) -> str | None:
    """The cache key of this request's page under ``versions``: one for everyone when
    ``public`` (the page cannot depend on who asks), else the caller's own."""
    if versions is None:
        return None
    user = request.user
    scope = "public" if public or not user.is_authenticated else f"u{user.pk}"
    # The versions by name: a user's own counter and staff's may hold the same number.
    stamp = ",".join(f"{name}={value}" for name, value in versions.items())
    # Encoded, so that no value can pass for another parameter (owner=a%26status%3Dready).
    query = urlencode(sorted(request.query_params.lists()), doseq=True)
    url = f"{request.build_absolute_uri(request.path)}?{query}"
    return f"content:api:{stamp}:{kind}:{scope}:{url}"


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
