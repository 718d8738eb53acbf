"""Cached JSON of the content API's reads (list and detail), under the versions PostgreSQL keeps.

A page is stored under the version numbers of the scopes it depends on (read before its
query), the caller and the exact URL. PostgreSQL's triggers move the numbers on every write of
a row a page shows, whatever wrote it (``streamgate.versions``), so an older page becomes
unreachable at the commit that changed it. Which scopes a page depends on follows from who may
see what: anonymous pages on ``public``; a user's on ``public`` and their own
(``owner:<id>``: their unpublished contents' progress, written several times a second, which
nobody else sees). Staff's pages, which show every unpublished content, are not cached. A
cache that fails is skipped, never an error; on SQLite nothing is cached.

The same keys give standard HTTP caching: each cacheable answer carries an ETag derived from its
key and ``Cache-Control: no-cache`` (``public`` for answers that are the same whoever asks, so
nginx or a CDN may keep them and revalidate each time; ``private`` otherwise), and a request
whose If-None-Match names the current tag is answered 304 before any content is read.
"""

import hashlib
import logging
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.utils.http import parse_etags
from rest_framework.request import Request

from streamgate.versions import PAGE_TTL, PUBLIC, owner_scope, versions_read

logger = logging.getLogger(__name__)


def page_versions(user) -> dict[str, int] | None:
    """The versions a page for ``user`` depends on, to be read before the page's query; None
    when they cannot be known (the page is then neither read from nor written to the cache)."""
    if user.is_staff:
        return None
    scopes = [PUBLIC]
    if user.is_authenticated:
        scopes.append(owner_scope(user.pk))
    return versions_read(scopes)


def public_versions(versions: dict[str, int] | None) -> dict[str, int] | None:
    """The part of ``versions`` a page anyone would get the same way depends on."""
    return None if versions is None else {PUBLIC: versions[PUBLIC]}


def page_key(
    kind: str, request: Request, versions: dict[str, int] | None, *, public: bool
) -> str | None:
    """The cache key of this request's page under ``versions``: one for everyone when
    ``public`` (the page cannot depend on who asks), else the caller's own."""
    if versions is None:
        return None
    user = request.user
    scope = "public" if public or not user.is_authenticated else f"u{user.pk}"
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


def page_etag(key: str | None) -> str | None:
    """The entity tag of the page stored under ``key``: the key names the versions, the caller's
    scope and the URL, so an equal tag means an equal answer."""
    if key is None:
        return None
    return 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def etag_matches(offered: str | None, etag: str | None) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not offered or etag is None:
        return False
    wanted = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == wanted for tag in parse_etags(offered))
