"""A content's audience in numbers: the rollup of the raw beacon rows into ContentViewStats
(the beat task ``apps.access.tasks.views_rollup``), and the reads of the API and the studio.

The rollup recomputes, from the raw rows, each content whose sessions moved since the last
rollup (less a margin, so a run that was missed or overlapped loses nothing), and writes the
stats row only where a number changed: the row is watched (``public`` cache scope), and
``rolled_at`` alone moves no version. TTFF percentiles are over the latest TTFF_SAMPLE
sessions, which bounds a popular content's work per minute.
"""

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.access.models import ContentView, ContentViewStats, PlaybackSession
from apps.content.models import Content

TTFF_SAMPLE = 10_000


def percentile(values: list[int], q: float) -> int | None:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def view_stats_compute(*, content_id) -> dict:
    """A content's numbers, from the raw rows."""
    views = ContentView.objects.filter(content_id=content_id)
    counted = views.aggregate(views=Count("id"), viewers=Count("viewer", distinct=True))
    sessions = PlaybackSession.objects.filter(content_id=content_id)
    summed = sessions.aggregate(
        n=Count("session_id"), watched=Sum("watched_seconds"), stalled=Sum("rebuffer_seconds")
    )
    ttffs = list(
        sessions.filter(ttff_ms__isnull=False)
        .order_by("-started_at")
        .values_list("ttff_ms", flat=True)[:TTFF_SAMPLE]
    )
    watched, stalled = summed["watched"] or 0.0, summed["stalled"] or 0.0
    return {
        "views": counted["views"],
        "unique_viewers": counted["viewers"],
        "sessions": summed["n"],
        "watch_seconds": round(watched, 3),
        "ttff_p50_ms": percentile(ttffs, 0.5),
        "ttff_p95_ms": percentile(ttffs, 0.95),
        "rebuffer_ratio": round(stalled / (watched + stalled), 6) if watched + stalled else None,
    }


def view_stats_refresh(*, content_id, now: datetime) -> bool:
    """Bring a content's stats row up to date; True when a number changed."""
    numbers = view_stats_compute(content_id=content_id)
    row = ContentViewStats.objects.filter(content_id=content_id).first()
    if row is None:
        ContentViewStats.objects.create(content_id=content_id, rolled_at=now, **numbers)
        return True
    changed = any(getattr(row, name) != value for name, value in numbers.items())
    for name, value in numbers.items():
        setattr(row, name, value)
    row.rolled_at = now
    row.save()
    return changed


def view_stats_rollup(*, now: datetime | None = None) -> dict[str, int]:
    """Refresh the stats of every content whose sessions moved since the last rollup (less
    two periods). Idempotent: a second run changes nothing."""
    now = now or timezone.now()
    last = ContentViewStats.objects.aggregate(last=Max("rolled_at"))["last"]
    margin = timedelta(seconds=2 * settings.VIEW_ROLLUP_SECONDS)
    moved = PlaybackSession.objects.all()
    if last is not None:
        moved = moved.filter(updated_at__gte=last - margin)
    content_ids = list(moved.values_list("content_id", flat=True).distinct().order_by())
    changed = sum(view_stats_refresh(content_id=cid, now=now) for cid in content_ids)
    return {"contents": len(content_ids), "changed": changed}


def view_stats_of(content: Content) -> ContentViewStats | None:
    """The content's rolled-up stats (prefetched as ``view_stats`` where lists read them)."""
    try:
        return content.view_stats
    except ObjectDoesNotExist:
        return None


@dataclass(frozen=True)
class DayViews:
    day: date
    views: int


def views_per_day(*, content: Content, days: int = 30, today: date | None = None) -> list[DayViews]:
    """Views counted on each of the last ``days`` days (UTC), oldest first, zeros included."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    counted = dict(
        ContentView.objects.filter(content=content, counted_at__date__gte=first)
        .annotate(day=TruncDate("counted_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        DayViews(day, counted.get(day, 0))
        for day in (first + timedelta(days=i) for i in range(days))
    ]
