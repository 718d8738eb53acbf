"""Reads of content shared by the API, the websocket consumer and tasks."""

import hashlib
import uuid
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Lower

from apps.content.extensions import list_sorts, output_prefetches
from apps.content.models import CREATORS_GROUP, Caption, Content, ContentStatus
from apps.content.progress import phase_label
from apps.content.search import content_search
from apps.content.status import ErrorKind
from streamgate.versions import PUBLIC, Remembered, owner_scope


def user_is_creator(user: User | AnonymousUser) -> bool:
    """True for active users allowed to upload: superusers and members of the creators group."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=CREATORS_GROUP).exists()


def content_playable_seconds(content: Content) -> float | None:
    """Seconds of ``content`` that can be watched now, or None when none can: all of a ready
    content; while processing, what its published chunks cover (a long video encoded in
    chunks, apps/transcode/chunks.py)."""
    if content.published_job_id is None:
        return None
    if content.status == ContentStatus.READY:
        return content.duration or 0.0
    if content.status == ContentStatus.PROCESSING and content.playable_seconds:
        return round(content.playable_seconds, 3)
    return None


def content_visible_to(user: User | AnonymousUser) -> QuerySet[Content]:
    """Contents ``user`` may see, with what their JSON shows (owner, renditions, what other
    apps contribute)."""
    return (
        content_visible_plain(user)
        .select_related("owner")
        .prefetch_related("renditions", "captions", *output_prefetches())
    )


def content_visible_plain(user: User | AnonymousUser) -> QuerySet[Content]:
    """Contents ``user`` may see: staff see all; others see ready content and their own. No
    related rows (playback needs only the content's own)."""
    if user.is_authenticated and user.is_staff:
        return Content.objects.all()
    visible = Q(status=ContentStatus.READY)
    if user.is_authenticated:
        visible |= Q(owner=user)
    return Content.objects.filter(visible)


# Contents by (id, viewer) while the versions a viewer's answer depends on stand.
_PLAYABLE = Remembered()


def content_visible_get(user: User | AnonymousUser, content_id: uuid.UUID) -> Content | None:
    """The content if ``user`` may see it (as ``content_visible_plain``), remembered by this
    process while ``public`` and, for a signed-in viewer, their own version stand (their
    unpublished contents); a repeat costs one version query. Staff, who see every unpublished
    content, are read each time. For playback, asked for at every start of a video."""

    def load() -> Content | None:
        return content_visible_plain(user).filter(pk=content_id).first()

    if user.is_authenticated and user.is_staff:
        return load()
    scopes = [PUBLIC, owner_scope(user.pk)] if user.is_authenticated else [PUBLIC]
    return _PLAYABLE.get((str(content_id), user.pk), scopes, load)


# How a list may be ordered, by name, with what to tell people. Other apps add theirs through
# ``apps.content.extensions.list_sort_register`` (views: access).
BUILTIN_SORTS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "title": "Title, A to Z",
    "relevance": "Best match first (with search; otherwise newest)",
}


def sort_choices() -> dict[str, str]:
    """Every sort a content list offers (name -> label): the core's and those other apps
    register."""
    return {**BUILTIN_SORTS, **{sort.name: sort.label for sort in list_sorts().values()}}


def content_list(
    *,
    user: User | AnonymousUser,
    status: str | None = None,
    owner: str | None = None,
    owner_id: int | None = None,
    search: str | None = None,
    gated: bool | None = None,
    sort: str | None = None,
) -> QuerySet[Content]:
    """Visible contents, optionally of one status, of one owner (a username, or ``me``; or by
    ``owner_id``), that
    match ``search`` (title and description, apps/content/search.py), gated or free; ordered
    by ``sort`` (``BUILTIN_SORTS`` or a registered one): by default the best match first when
    searching, else the newest."""
    contents = content_visible_to(user)
    if status:
        contents = contents.filter(status=status)
    if owner == "me":
        contents = contents.filter(owner_id=user.pk) if user.is_authenticated else contents.none()
    elif owner:
        contents = contents.filter(owner__username=owner)
    if owner_id is not None:
        contents = contents.filter(owner_id=owner_id)
    if gated is not None:
        contents = contents.filter(gate__isnull=not gated)
    if search:
        contents = content_search(contents, search)
    sort = sort or ("relevance" if search else "newest")
    if sort == "relevance" and search:
        return contents.order_by(F("search_rank").desc(), "-created_at", "-id")
    if sort == "oldest":
        return contents.order_by("created_at", "id")
    if sort == "title":
        return contents.order_by(Lower("title"), "-created_at", "-id")
    registered = list_sorts().get(sort)
    if registered is not None:
        return registered.apply(contents)
    return contents.order_by("-created_at", "-id")


def content_can_manage(*, user: User | AnonymousUser, content: Content) -> bool:
    """Owners and staff manage a content (edit, delete, retry, follow its progress)."""
    return (
        user.is_authenticated and user.is_active and (user.is_staff or content.owner_id == user.pk)
    )


def content_get_manageable(
    *, user: User | AnonymousUser, content_id: uuid.UUID | str
) -> Content | None:
    """The content if ``user`` may manage it, else None (missing or someone else's)."""
    content = Content.objects.filter(pk=content_id).first()
    if content is None or not content_can_manage(user=user, content=content):
        return None
    return content


def content_status_message(content: Content, *, restarting: bool = False) -> dict[str, Any]:
    """The websocket contract's status message for the content's current state, with the
    fields added for the studio: ``overall`` (0-100, forward-only within an attempt), ``label``
    (the state in plain words) and ``retryable`` (whether a retry can help a failure)."""
    return {
        "type": "status",
        "status": content.status,
        "error": content.error or None,
        "overall": content.overall_progress,
        "label": phase_label(content.status, retrying=restarting),
        "retryable": content_retryable(content),
    }


def content_retryable(content: Content) -> bool:
    """A failed content whose failure a new encode can help: not a file that cannot be used."""
    return (
        content.status == ContentStatus.FAILED
        and bool(content.source_path)
        and content.error_kind != ErrorKind.SOURCE
    )


def poster_url(content: Content) -> str | None:
    """The poster's root-relative URL, versioned by the stored image (a new poster is a new
    URL, which caches may keep for good); None when there is none."""
    if not content.poster:
        return None
    version = hashlib.sha256(content.poster.encode()).hexdigest()[:12]
    return f"/posters/{content.id}.jpg?v={version}"


def caption_list(content_id: uuid.UUID | str) -> list[Caption]:
    """A content's captions, by language: what its manifests offer players."""
    return list(Caption.objects.filter(content_id=content_id).order_by("language"))


def caption_get(*, content_id: uuid.UUID | str, caption_id: uuid.UUID | str) -> Caption | None:
    """One caption of the content, or None (missing, or another content's)."""
    return Caption.objects.filter(content_id=content_id, pk=caption_id).first()
