"""The web UI's pages: catalog, watch, studio, upload, edit and account. They render the page
shell and what the server knows; the interactive parts call the JSON API from static/js/. They
compose the apps below access (content's selectors, chain's configured chains) with access's own
file delivery (posters), which is why they live in the top layer."""

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from apps.access.audience_stats import view_stats_compute, views_per_day
from apps.access.embeds import social_tags
from apps.access.gate_words import ChainLabel, Requirement, gate_words
from apps.access.gates import GateInvalid, gate_validate
from apps.access.services import signin_policy
from apps.access.stream import storage_response
from apps.chain.chains import (
    EXPLORERS,
    KNOWN_CHAINS,
    chain_name,
    configured_chains,
    configured_evm_chains,
)
from apps.content.models import ContentStatus
from apps.content.scopes import SCOPE_HELP, SCOPES
from apps.content.selectors import (
    content_can_manage,
    content_get_manageable,
    content_list,
    content_playable_seconds,
    content_visible_to,
    poster_url,
    sort_choices,
    user_is_creator,
)


def _creator_required(request: HttpRequest) -> None:
    if not user_is_creator(request.user):
        raise PermissionDenied("Only creators can publish content.")


# Videos a catalog page shows at once.
CATALOG_PAGE_SIZE = 24
CATALOG_FILTERS = {"": None, "free": False, "gated": True}


def _listing(request: HttpRequest, *, owner: User | None = None) -> dict:
    """A catalog's context: the ready videos matching the page's search form (``q``, ``sort``,
    ``show``: all/free/gated, ``page``). Values the form cannot produce fall back to its
    defaults rather than failing: these are links people share and edit by hand."""
    # NUL is no character of a word, and PostgreSQL refuses it in text: dropped, not a 500.
    text = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    sorts = {name: label for name, label in sort_choices().items() if name != "relevance"}
    sort = request.GET.get("sort", "")
    if sort not in sorts:
        sort = ""
    show = request.GET.get("show", "")
    if show not in CATALOG_FILTERS:
        show = ""
    contents = content_list(
        user=request.user,
        status=ContentStatus.READY,
        owner_id=owner.pk if owner else None,
        search=text or None,
        gated=CATALOG_FILTERS[show],
        sort=sort or None,
    )
    page = Paginator(contents, CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    keep = {key: value for key, value in (("q", text), ("sort", sort), ("show", show)) if value}
    return {
        "nav": "catalog",
        "contents": page.object_list,
        "page": page,
        "query": text,
        "sort": sort,
        "sorts": sorts,
        "show": show,
        "filtered": bool(text or show),
        "page_link": urlencode(keep),
    }


@require_safe
@ensure_csrf_cookie
def catalog(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", _listing(request))


@require_safe
@ensure_csrf_cookie
def creator(request: HttpRequest, username: str) -> HttpResponse:
    """One creator's published videos, searchable like the catalog."""
    owner = None
    if "\x00" not in username:  # no name holds one (and PostgreSQL refuses it in text)
        owner = User.objects.filter(username=username, is_active=True).first()
    if owner is None or not user_is_creator(owner):
        raise Http404("No such creator.")
    return render(request, "home.html", {**_listing(request, owner=owner), "creator": owner})


def _chain_label(caip2: str) -> ChainLabel:
    return ChainLabel(chain_name(caip2), EXPLORERS.get(caip2, ""))


def _gate_in_words(gate: dict | None) -> Requirement | None:
    """What a gated content asks of its viewers, in words (None for open content, or for a
    gate saved before validation that no longer validates: playback explains that one)."""
    if gate is None:
        return None
    try:
        return gate_words(gate_validate(gate), _chain_label)
    except GateInvalid:
        return None


@require_safe
@ensure_csrf_cookie
def watch(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    content = content_visible_to(request.user).filter(pk=content_id).first()
    if content is None:
        raise Http404("No such content.")
    embed = request.GET.get("embed") == "1"
    # A long video still processing plays from its first published chunks (apps/transcode/
    # chunks.py): the page then plays what is there and says how much that is.
    playable_seconds = content_playable_seconds(content)
    config = {
        "id": str(content.id),
        "status": content.status,
        "playable": playable_seconds is not None,
        "playableSeconds": playable_seconds,
        "duration": content.duration,
        "canManage": content_can_manage(user=request.user, content=content),
        "embed": embed,
        "signIn": f"/signin/?next=/watch/{content.id}/",
        "publicUrl": settings.STREAMGATE_PUBLIC_URL,
        "title": content.title,
        # Names of the chains an offer may be on (the purchase buttons say where they pay).
        "chainNames": {caip2: chain_name(caip2) for caip2 in configured_chains()},
    }
    response = render(
        request,
        "watch.html",
        {
            "nav": "catalog",
            "content": content,
            "watch_config": config,
            "playable_seconds": playable_seconds,
            "embed": embed,
            "gate_words": _gate_in_words(content.gate),
            # Link previews and oEmbed discovery, for ready videos (the player alone needs none).
            "social": None if embed else social_tags(content),
        },
    )
    if embed:  # the player alone, for the creator's <iframe> on other sites
        response.xframe_options_exempt = True
    return response


@require_safe
def poster(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    """The published poster of a content its viewer may see (catalog images are public)."""
    content = content_visible_to(request.user).filter(pk=content_id).first()
    if content is None or not content.poster:
        raise Http404("No poster.")
    # The URL the API gives carries the poster's version: that one never changes and may be
    # kept; a bare or outdated URL is checked each time (a 304 while the version stands), so a
    # new poster shows at once.
    version = (poster_url(content) or "").partition("?v=")[2]
    etag = f'"{version}"'
    versioned = request.GET.get("v") == version
    cache = "public, max-age=31536000, immutable" if versioned else "public, no-cache"
    held = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
    if etag in held:
        return HttpResponse(status=304, headers={"ETag": etag, "Cache-Control": cache})
    response = storage_response(request, content.poster, "poster.jpg")
    if response.status_code == 200:  # from disk; an S3 redirect keeps its no-store
        response["Cache-Control"] = cache
        response["ETag"] = etag
    return response


@login_required
@require_safe
@ensure_csrf_cookie
def studio(request: HttpRequest) -> HttpResponse:
    _creator_required(request)
    contents = content_list(user=request.user, owner="me")[:200]
    return render(request, "studio.html", {"nav": "studio", "contents": contents})


@login_required
@require_safe
@ensure_csrf_cookie
def sales(request: HttpRequest) -> HttpResponse:
    """The creator's purchases, revenue and withdrawable balances: static/js/sales.js reads
    them from the API (GET /api/v1/sales/) and withdraws through the creator's wallet."""
    _creator_required(request)
    config = {"chainNames": {caip2: chain_name(caip2) for caip2 in configured_chains()}}
    response = render(request, "sales.html", {"nav": "studio", "sales_config": config})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
@ensure_csrf_cookie
def upload(request: HttpRequest) -> HttpResponse:
    _creator_required(request)
    config: dict = {"chunkSize": settings.WEB_UPLOAD_CHUNK_SIZE, "replace": None}
    # ?replace=<id>: the next file becomes that content's new source (its Replace action).
    replacing = _replaceable(request, request.GET.get("replace", ""))
    if replacing is not None:
        config["replace"] = {"id": str(replacing.id), "title": replacing.title}
    return render(request, "upload.html", {"nav": "upload", "upload_config": config})


def _replaceable(request: HttpRequest, raw_id: str):
    """The caller's content named by ``raw_id`` if it can take a new file, else None."""
    try:
        content_id = uuid.UUID(raw_id)
    except ValueError:
        return None
    content = content_get_manageable(user=request.user, content_id=content_id)
    if content is None or content.status not in (ContentStatus.FAILED, ContentStatus.DRAFT):
        return None
    return content


@login_required
@require_safe
@ensure_csrf_cookie
def edit(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    content = content_get_manageable(user=request.user, content_id=content_id)
    if content is None:
        raise Http404("No such content.")
    chains = [chain.caip2 for chain in configured_evm_chains()]
    gate_chains = configured_chains()  # a gate may name only these (the API refuses others)
    return render(
        request,
        "edit.html",
        {
            "nav": "studio",
            "content": content,
            "chains": chains,
            "public_url": settings.STREAMGATE_PUBLIC_URL,
            "content_poster_url": poster_url(content),
            "gate_chains": gate_chains,
            "gate_chain_names": [chain_name(caip2) for caip2 in gate_chains],
            "edit_config": {
                "id": str(content.id),
                "duration": content.duration,
                "gate": content.gate,
                "chains": chains,
                "gateChains": gate_chains,
                # Names of the chains a condition may show: configured ones and any we know
                # (a rule saved before its chain's RPC went still reads in words).
                "chainNames": {c: chain_name(c) for c in {*KNOWN_CHAINS, *gate_chains}},
            },
        },
    )


@login_required
@require_safe
@ensure_csrf_cookie
def account(request: HttpRequest) -> HttpResponse:
    """Linked wallets, API tokens, sign out everywhere: static/js/account.js drives the API."""
    policy = signin_policy()
    config = {
        "evmChainIds": sorted(policy.evm_chain_ids),
        "solanaChains": sorted(policy.solana_chains),
        "hasPassword": request.user.has_usable_password(),
        "chainNames": {caip2: known.name for caip2, known in KNOWN_CHAINS.items()},
    }
    scopes = [{"name": name, "help": SCOPE_HELP[name]} for name in SCOPES]
    response = render(
        request,
        "account.html",
        {"nav": "account", "account_config": config, "token_scopes": scopes},
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
def audience(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    """A content's views, watch time and QoE for its owner, counted live from the raw rows
    (the API's ``views`` is the rolled-up copy)."""
    content = content_get_manageable(user=request.user, content_id=content_id)
    if content is None:
        raise Http404("No such content.")
    numbers = view_stats_compute(content_id=content.pk)
    days = views_per_day(content=content, days=30)
    figures = _audience_figures(numbers)
    chart = {
        "days": [{"day": d.day.isoformat(), "views": d.views} for d in days],
        "label": f"Views per day, last 30 days: {sum(d.views for d in days)} in total",
    }
    return render(
        request,
        "audience.html",
        {"nav": "studio", "content": content, "figures": figures, "days": days, "chart": chart},
    )


def _audience_figures(numbers: dict) -> list[dict[str, str]]:
    """The numbers as the page shows them (name, value, test id)."""

    def seconds(ms: int | None) -> str:
        return "—" if ms is None else f"{ms / 1000:.2f} s"

    watched = int(numbers["watch_seconds"])
    hours, rest = divmod(watched, 3600)
    if hours:
        watch_time = f"{hours} h {rest // 60:02d} min"
    elif watched >= 60:
        watch_time = f"{rest // 60} min {rest % 60:02d} s"
    else:
        watch_time = f"{numbers['watch_seconds']:.1f} s"
    ratio = numbers["rebuffer_ratio"]
    return [
        {"name": "Views", "value": str(numbers["views"]), "id": "views"},
        {"name": "Unique viewers", "value": str(numbers["unique_viewers"]), "id": "viewers"},
        {"name": "Watch time", "value": watch_time, "id": "watch-time"},
        {
            "name": "Time to first frame (median)",
            "value": seconds(numbers["ttff_p50_ms"]),
            "id": "ttff-p50",
        },
        {
            "name": "Time to first frame (95th pct.)",
            "value": seconds(numbers["ttff_p95_ms"]),
            "id": "ttff-p95",
        },
        {
            "name": "Rebuffering",
            "value": "—" if ratio is None else f"{100 * ratio:.2f} %",
            "id": "rebuffer",
        },
    ]
