"""oEmbed and social tags: how other sites and apps embed and preview a watch page.

``GET /oembed?url=<watch page URL>[&format=json][&maxwidth=W][&maxheight=H]`` answers an
oEmbed 1.0 ``video`` (https://oembed.com): the responsive ``<iframe>`` of the player-only page
(``/watch/<id>/?embed=1``, which asks for access itself when the video is gated), its size
within maxwidth/maxheight, the title, the creator, and the poster as thumbnail. Only ready
videos have one: a draft, a video still processing or failed, a deleted or unknown one is 404,
like a URL of another site or of no watch page; a malformed request is 400; any format but JSON
is 501 (the spec's answer for a format the provider does not serve). Every answer, errors
included, is JSON ``{"detail", "reason"}``-shaped where it is an error, open to every origin.

Watch pages of ready videos carry the discovery ``<link>`` and Open Graph and Twitter card tags
(``social_tags``). None of it says more than the public catalog does of a video (title,
description, creator, poster, length): never its gate, offers or anything a viewer unlocks.
All URLs are absolute, on STREAMGATE_PUBLIC_URL.

Answers are cached under the ``public`` cache version (streamgate/versions.py), which
PostgreSQL's triggers move at the commit of any change to a ready content, its renditions or
its owner's name: a new title or poster, a video deleted or unpublished shows at once.

Written by hand: the oEmbed providers for Django (djangoembed, django-oembed) are consumers
or unmaintained since Django 1.x, and an answer is a dozen fields.
"""

import re
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, JsonResponse
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.content.cache import page_get, page_set
from apps.content.models import Content, ContentStatus
from apps.content.selectors import content_visible_plain, poster_url
from streamgate.exceptions import api_error
from streamgate.versions import PUBLIC, versions_read

PROVIDER_NAME = "StreamGate"
DEFAULT_WIDTH = 960  # the embed snippet's width on the edit page
FALLBACK_SHAPE = (16, 9)
MAX_URL_LENGTH = 2000
DESCRIPTION_LENGTH = 300
WATCH_PATH = re.compile(
    r"^/watch/(?P<id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})/?$"
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Consumers may keep an answer this long (seconds); ours changes at the next write anyway.
CLIENT_MAX_AGE = 300


class EmbedRefused(Exception):
    """An oEmbed request answered with an error: ``status``, ``reason`` and a message."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def site_origin() -> str:
    return settings.STREAMGATE_PUBLIC_URL.rstrip("/")


def watch_url(content_id: uuid.UUID | str) -> str:
    return f"{site_origin()}/watch/{content_id}/"


def embed_url(content_id: uuid.UUID | str) -> str:
    return f"{watch_url(content_id)}?embed=1"


def _host_port(scheme: str, netloc_host: str | None, port: int | None) -> tuple[str, int]:
    return (netloc_host or "").lower(), port or DEFAULT_PORTS.get(scheme, 0)


def watch_content_id(url: str) -> uuid.UUID:
    """The content id a watch page URL of this site names, or EmbedRefused: 400 for a URL
    that is none, 404 for one of another site or of no watch page. The scheme may differ from
    the site's (consumers rewrite http to https and back); the host and port may not."""
    if not url:
        raise EmbedRefused(400, "url_required", "Give the watch page's URL: ?url=…")
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 33 for c in url):
        raise EmbedRefused(400, "bad_url", "The url parameter is not a URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EmbedRefused(400, "bad_url", "The url parameter is not a URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise EmbedRefused(400, "bad_url", "The url parameter must be an http(s) URL.")
    site = urlsplit(site_origin())
    site_host = _host_port(site.scheme, site.hostname, site.port)
    same = _host_port(scheme, parts.hostname, port) == site_host
    # Across schemes, a default port stands for the other scheme's default too.
    if not same and port is None and site.port is None:
        same = (parts.hostname or "").lower() == site_host[0]
    if not same:
        raise EmbedRefused(404, "not_this_site", "This site has no page at that URL.")
    found = WATCH_PATH.match(parts.path)
    if found is None:
        raise EmbedRefused(404, "not_a_video_page", "That URL is not a video's watch page.")
    return uuid.UUID(found["id"])


def _dimension(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or not 0 < int(value) <= 100_000:
        raise EmbedRefused(400, "bad_size", f"{name} must be a whole number of pixels, 1-100000.")
    return int(value)


def embed_size(
    content: Content, *, max_width: int | None = None, max_height: int | None = None
) -> tuple[int, int]:
    """The player's size: DEFAULT_WIDTH wide in the video's shape, scaled down (never up) to
    fit within ``max_width`` x ``max_height``."""
    shape_w, shape_h = (
        (content.width, content.height) if content.width and content.height else FALLBACK_SHAPE
    )
    width = DEFAULT_WIDTH
    if max_width is not None:
        width = min(width, max_width)
    height = round(width * shape_h / shape_w)
    if max_height is not None and height > max_height:
        height = max_height
        width = round(height * shape_w / shape_h)
    return max(width, 1), max(height, 1)


def embed_html(content: Content, width: int, height: int) -> str:
    """The responsive embed: it fills its container's width up to ``width`` pixels, in the
    video's shape, as the watch page's share dialog gives it."""
    return format_html(
        '<div style="position:relative;width:100%;max-width:{}px;aspect-ratio:{}/{}">'
        '<iframe src="{}" width="{}" height="{}" title="{}" '
        'style="position:absolute;inset:0;width:100%;height:100%;border:0" '
        'allow="fullscreen; picture-in-picture; encrypted-media" allowfullscreen></iframe></div>',
        width,
        width,
        height,
        embed_url(content.id),
        width,
        height,
        content.title,
    )


def _thumbnail(content: Content) -> dict[str, Any]:
    """The poster as oEmbed's thumbnail, at its size (the tallest rendition's); none without."""
    path = poster_url(content)
    renditions = sorted(content.renditions.all(), key=lambda r: r.height, reverse=True)
    if path is None or not renditions:
        return {}
    return {
        "thumbnail_url": f"{site_origin()}{path}",
        "thumbnail_width": renditions[0].width,
        "thumbnail_height": renditions[0].height,
    }


def ready_content(content_id: uuid.UUID) -> Content | None:
    """The content if anyone may see it (ready), with what an embed shows."""
    return (
        content_visible_plain(AnonymousUser())
        .filter(pk=content_id, status=ContentStatus.READY)
        .select_related("owner")
        .prefetch_related("renditions")
        .first()
    )


def oembed_answer(
    content: Content, *, max_width: int | None = None, max_height: int | None = None
) -> dict[str, Any]:
    """The oEmbed 1.0 ``video`` answer for a ready ``content``."""
    width, height = embed_size(content, max_width=max_width, max_height=max_height)
    owner = content.owner.get_username()
    return {
        "version": "1.0",
        "type": "video",
        "title": content.title,
        "author_name": owner,
        "author_url": f"{site_origin()}/creators/{owner}/",
        "provider_name": PROVIDER_NAME,
        "provider_url": f"{site_origin()}/",
        "html": embed_html(content, width, height),
        "width": width,
        "height": height,
        **_thumbnail(content),
    }


def _cached_answer(content_id: uuid.UUID, max_width, max_height) -> dict[str, Any] | None:
    versions = versions_read([PUBLIC])
    key = None
    if versions is not None:
        key = f"oembed:{versions[PUBLIC]}:{site_origin()}:{content_id}:{max_width}:{max_height}"
    answer = page_get(key)
    if answer is None:
        content = ready_content(content_id)
        if content is None:
            return None
        answer = oembed_answer(content, max_width=max_width, max_height=max_height)
        page_set(key, answer)
    return answer


def _json(status: int, body: dict[str, Any] | None = None, **error: str) -> JsonResponse:
    response = (
        JsonResponse(body, json_dumps_params={"ensure_ascii": False})
        if body is not None
        else api_error(status, error["detail"], error["reason"])
    )
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = f"public, max-age={CLIENT_MAX_AGE}" if body else "no-store"
    return response


def oembed(request: HttpRequest) -> JsonResponse:
    """``GET /oembed``: see the module's docstring."""
    if request.method not in ("GET", "HEAD"):
        response = _json(405, detail="Use GET.", reason="method_not_allowed")
        response["Allow"] = "GET, HEAD"
        return response
    try:
        wanted = request.GET.get("format", "json")
        if wanted != "json":
            raise EmbedRefused(501, "format_not_supported", "Only format=json is served.")
        content_id = watch_content_id(request.GET.get("url", ""))
        max_width = _dimension(request.GET.get("maxwidth"), "maxwidth")
        max_height = _dimension(request.GET.get("maxheight"), "maxheight")
        answer = _cached_answer(content_id, max_width, max_height)
        if answer is None:
            raise EmbedRefused(404, "not_found", "No video ready to watch at that URL.")
    except EmbedRefused as refused:
        return _json(refused.status, detail=refused.detail, reason=refused.reason)
    return _json(200, answer)


def social_tags(content: Content) -> dict[str, Any] | None:
    """What a watch page's <head> tells link previews (Open Graph, Twitter card) and oEmbed
    consumers (the discovery link) about a ready ``content``; None for any other status (its
    page then says no more than it did)."""
    if content.status != ContentStatus.READY:
        return None
    width, height = embed_size(content)
    thumbnail = _thumbnail(content)
    page = watch_url(content.id)
    description = Truncator(" ".join(content.description.split())).chars(DESCRIPTION_LENGTH)
    # Twitter's player card needs an HTTPS player and an image; otherwise the large image
    # card, or the plain summary without a poster.
    https = page.startswith("https://")
    card = "player" if https and thumbnail else "summary_large_image" if thumbnail else "summary"
    return {
        "title": content.title,
        "description": description,
        "url": page,
        "site_name": PROVIDER_NAME,
        "image": thumbnail.get("thumbnail_url"),
        "image_width": thumbnail.get("thumbnail_width"),
        "image_height": thumbnail.get("thumbnail_height"),
        "twitter_card": card,
        "player": embed_url(content.id) if card == "player" else None,
        "player_width": width,
        "player_height": height,
        "oembed": f"{site_origin()}/oembed?{urlencode({'url': page, 'format': 'json'})}",
    }
