"""The web UI's pages: catalog, watch, studio, upload and edit. They render the page shell and
what the server knows; the interactive parts call the JSON API from static/js/. They compose
the apps below access (content's selectors, chain's configured chains) with access's own file
delivery (posters), which is why they live in the top layer."""

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from apps.access.audience_stats import view_stats_compute, views_per_day
from apps.access.stream import storage_response
from apps.chain.chains import configured_chains, configured_evm_chains
from apps.content.models import ContentStatus
from apps.content.selectors import (
    content_can_manage,
    content_get_manageable,
    content_list,
    content_visible_to,
    user_is_creator,
)


def _creator_required(request: HttpRequest) -> None:
    if not user_is_creator(request.user):
        raise PermissionDenied("Only creators can publish content.")


@require_safe
@ensure_csrf_cookie
def catalog(request: HttpRequest) -> HttpResponse:
    contents = content_list(user=request.user, status=ContentStatus.READY)[:60]
    return render(request, "home.html", {"nav": "catalog", "contents": contents})


@require_safe
@ensure_csrf_cookie
def watch(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    content = content_visible_to(request.user).filter(pk=content_id).first()
    if content is None:
        raise Http404("No such content.")
    embed = request.GET.get("embed") == "1"
    config = {
        "id": str(content.id),
        "status": content.status,
        "canManage": content_can_manage(user=request.user, content=content),
        "embed": embed,
        "signIn": f"/signin/?next=/watch/{content.id}/",
    }
    response = render(
        request,
        "watch.html",
        {"nav": "catalog", "content": content, "watch_config": config, "embed": embed},
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
    response = storage_response(request, content.poster, "poster.jpg")
    if response.status_code == 200:  # from disk; an S3 redirect keeps its no-store
        response["Cache-Control"] = "public, max-age=300"
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
def upload(request: HttpRequest) -> HttpResponse:
    _creator_required(request)
    return render(
        request,
        "upload.html",
        {"nav": "upload", "upload_config": {"chunkSize": settings.WEB_UPLOAD_CHUNK_SIZE}},
    )


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
            "gate_chains": gate_chains,
            "edit_config": {
                "id": str(content.id),
                "gate": content.gate,
                "chains": chains,
                "gateChains": gate_chains,
            },
        },
    )


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
