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

from apps.access.stream import storage_response
from apps.chain.chains import configured_chains, configured_evm_chains
from apps.content.models import ContentStatus
from apps.content.selectors import (
    content_can_manage,
    content_get_manageable,
    content_list,
    content_visible_to,
    poster_url,
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
            "edit_config": {
                "id": str(content.id),
                "gate": content.gate,
                "chains": chains,
                "gateChains": gate_chains,
            },
        },
    )
