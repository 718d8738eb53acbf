"""Views, watch time and quality of experience, from the beacons players send.

Why by hand: counting views is an anti-abuse rule (what counts, for whom, how often), written
against our own playback grants; no package knows them. The pieces:

- The beacon door, ``POST /api/v1/contents/<id>/beacons/`` (apps/access/api/views.py), takes
  JSON as ``application/json`` or as the ``text/plain`` body ``navigator.sendBeacon`` sends
  on pagehide, at most BEACON_MAX_BYTES and BEACON_MAX_EVENTS events, numbers in range, and
  answers 204 (or a JSON 4xx with a reason). It is throttled per client address (scope
  ``beacons``); a player sends one beacon a minute at most and a last one as the page closes.
- Its only credential is the view session (apps/access/audience_tokens.py) that the playback
  API returns with the stream URLs: signed, naming the content, the viewer and the time of the
  grant. So a view needs a playback grant (a passed gate, for gated content), and the door reads
  no cookie and no session: nothing ambient a cross-site page could borrow, hence no CSRF check
  to make (a forged beacon without a session is refused). The viewer is the signed-in user, or
  for anyone else a random id in a signed first-party cookie set by the playback API.
- A view counts when a beacon reports the first frame shown (a ``start`` event), once per
  viewer per content per VIEW_WINDOW_SECONDS (sliding from the last counted view): one
  conditional upsert on ViewerWindow decides it, so two beacons racing count once. Anonymous
  viewers are also capped by client address (streamgate/client_address.py): at most
  VIEWS_PER_ADDRESS of them per content per window, so clearing cookies in a loop adds little.
- Watch time: a session's seconds watched never exceed twice the time since its grant plus a
  minute (playback at 2x), whatever the beacons claim; the excess is dropped.
- Storage: beacons write only unwatched rows (PlaybackSession, ViewerWindow, ContentView), so
  they never move the cache versions; a Celery beat task (``views_rollup``, every
  VIEW_ROLLUP_SECONDS) rolls them into ContentViewStats, which is watched: the API's ``views``
  is at most one rollup period (plus its run) behind, and the public cache moves at most once
  per period, only when a number changed (apps/access/audience_stats.py).
- /metrics: histograms of TTFF and of each beacon's rebuffer ratio, counters of beacons and views.
"""

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from apps.access.audience_tokens import (
    SessionRejected,
    ViewSession,
    session_sign,
    session_verify,
    viewer_of_user,
)
from apps.access.models import ContentView, PlaybackSession, ViewerWindow
from apps.access.playback import playback_key_id, playback_keys
from apps.content.models import Content
from streamgate.exceptions import NotAllowed
from streamgate.metrics import BEACONS, PLAYBACK_REBUFFER_RATIO, PLAYBACK_TTFF, VIEWS_COUNTED

logger = logging.getLogger(__name__)

BEACON_MAX_BYTES = 8192
BEACON_MAX_EVENTS = 64
VIEWER_COOKIE_SALT = "streamgate.viewer"


class BeaconRefused(NotAllowed):
    """The beacon's view session is not valid for this content now (403 with a reason)."""


@dataclass(frozen=True)
class BeaconTotals:
    """What one beacon's events add up to."""

    started: bool = False
    ttff_ms: int | None = None
    watched_seconds: float = 0.0
    rebuffer_seconds: float = 0.0
    rebuffer_count: int = 0
    rendition_height: int | None = None


def beacon_totals(events: list[dict]) -> BeaconTotals:
    """Add up validated events (``start``, ``rebuffer``, ``watched``, ``rendition``)."""
    started, ttff, watched, rebuffer, stalls, height = False, None, 0.0, 0.0, 0, None
    for event in events:
        kind = event["type"]
        if kind == "start":
            started = True
            ttff = event["ttff_ms"] if ttff is None else ttff
        elif kind == "watched":
            watched += event["seconds"]
        elif kind == "rebuffer":
            rebuffer += event["seconds"]
            stalls += 1
        elif kind == "rendition":
            height = event["height"]
    return BeaconTotals(started, ttff, watched, rebuffer, stalls, height)


def viewer_cookie_new() -> str:
    """A fresh anonymous viewer id (the cookie's value)."""
    return secrets.token_urlsafe(16)


def view_session_issue(
    *, user: AbstractBaseUser | AnonymousUser, content: Content, cookie_viewer: str | None
) -> str:
    """The signed view session for a playback grant of ``content`` to ``user`` (or, signed
    out, to the holder of the viewer cookie ``cookie_viewer``)."""
    keys = playback_keys()
    kid = playback_key_id()
    if user.is_authenticated:
        viewer = viewer_of_user(user.pk, key=keys[kid])
    else:
        if not cookie_viewer:
            raise ValueError("an anonymous viewer needs a cookie id")
        viewer = "a" + cookie_viewer
    session = ViewSession(
        content_id=content.id.hex,
        viewer=viewer,
        session_id=secrets.token_hex(8),
        issued=int(time.time()),
    )
    return session_sign(session, kid=kid, key=keys[kid])


def beacon_record(
    *, content: Content, session_text: str, events: list[dict], address: str | None
) -> bool:
    """Record one beacon of a playback of ``content``; True when it counted a view. Raises
    BeaconRefused when the session is not this server's for this content, or has expired."""
    now = timezone.now()
    try:
        session = session_verify(
            session_text,
            content_id=content.id.hex,
            keys=playback_keys(),
            now=now.timestamp(),
            max_age=settings.VIEW_SESSION_MAX_AGE,
        )
    except SessionRejected as error:
        raise BeaconRefused(str(error), reason=error.reason) from None
    totals = beacon_totals(events)
    with transaction.atomic():
        _session_add(session, content=content, totals=totals, now=now)
        counted = totals.started and _view_count(session, content=content, address=address, now=now)
    BEACONS.inc()
    if counted:
        VIEWS_COUNTED.inc()
    if totals.ttff_ms is not None:
        PLAYBACK_TTFF.observe(totals.ttff_ms / 1000)
    playing = totals.watched_seconds + totals.rebuffer_seconds
    if playing > 0:
        PLAYBACK_REBUFFER_RATIO.observe(totals.rebuffer_seconds / playing)
    return counted


def _session_add(
    session: ViewSession, *, content: Content, totals: BeaconTotals, now: datetime
) -> None:
    """Add a beacon to its session's row (created by the first), in one UPDATE."""
    # Watched seconds are capped by the time since the grant (at 2x speed, plus a minute).
    cap = 2 * max(0.0, now.timestamp() - session.issued) + 60
    changes = {
        "updated_at": now,
        "beacons": F("beacons") + 1,
        "watched_seconds": Least(F("watched_seconds") + totals.watched_seconds, Value(cap)),
        "rebuffer_seconds": Least(F("rebuffer_seconds") + totals.rebuffer_seconds, Value(cap)),
        "rebuffer_count": F("rebuffer_count") + totals.rebuffer_count,
    }
    if totals.ttff_ms is not None:  # the first frame is reported once; a repeat changes nothing
        changes["ttff_ms"] = Coalesce(F("ttff_ms"), Value(totals.ttff_ms))
    if totals.rendition_height is not None:
        changes["rendition_height"] = totals.rendition_height
    rows = PlaybackSession.objects.filter(pk=session.session_id, content=content)
    if rows.update(**changes):
        return
    try:
        with transaction.atomic():
            PlaybackSession.objects.create(
                session_id=session.session_id,
                content=content,
                viewer=session.viewer,
                started_at=now,
                updated_at=now,
                ttff_ms=totals.ttff_ms,
                watched_seconds=min(totals.watched_seconds, cap),
                rebuffer_seconds=min(totals.rebuffer_seconds, cap),
                rebuffer_count=totals.rebuffer_count,
                rendition_height=totals.rendition_height,
                beacons=1,
            )
    except IntegrityError:  # a concurrent first beacon of the same session won
        rows.update(**changes)


def _view_count(
    session: ViewSession, *, content: Content, address: str | None, now: datetime
) -> bool:
    """Count a view for the session's viewer unless one was counted within the window (or,
    for an anonymous viewer, their address has used up its share of the window)."""
    window_start = now - timedelta(seconds=settings.VIEW_WINDOW_SECONDS)
    if session.anonymous and address:
        recent = ContentView.objects.filter(
            address=address, content=content, anonymous=True, counted_at__gt=window_start
        )
        if recent.count() >= settings.VIEWS_PER_ADDRESS:
            logger.info(
                "view not counted: address cap",
                extra={"content": str(content.id), "session": session.session_id},
            )
            return False
    if not _window_claim(content=content, viewer=session.viewer, now=now, since=window_start):
        return False
    ContentView.objects.create(
        content=content,
        viewer=session.viewer,
        anonymous=session.anonymous,
        address=address,
        counted_at=now,
    )
    return True


def _window_claim(*, content: Content, viewer: str, now: datetime, since: datetime) -> bool:
    """Move the viewer's window to ``now`` if its last view is older than ``since`` (or there
    is none): one atomic statement, PostgreSQL and SQLite alike."""
    table = ViewerWindow._meta.db_table
    content_value = ViewerWindow._meta.get_field("content").get_db_prep_value(
        content.pk, connection
    )
    counted = ViewerWindow._meta.get_field("counted_at")
    sql = (
        f"INSERT INTO {table} (content_id, viewer, counted_at) VALUES (%s, %s, %s) "  # noqa: S608
        "ON CONFLICT (content_id, viewer) DO UPDATE SET counted_at = excluded.counted_at "
        f"WHERE {table}.counted_at <= %s RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                content_value,
                viewer,
                counted.get_db_prep_value(now, connection),
                counted.get_db_prep_value(since, connection),
            ],
        )
        return cursor.fetchone() is not None
