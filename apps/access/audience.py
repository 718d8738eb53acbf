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

import ipaddress
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, connection, transaction
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
from apps.content.models import Content, ContentStatus
from streamgate.exceptions import DomainError, NotAllowed, NotFound
from streamgate.metrics import BEACONS, PLAYBACK_REBUFFER_RATIO, PLAYBACK_TTFF, VIEWS_COUNTED

logger = logging.getLogger(__name__)

BEACON_MAX_BYTES = 8192
BEACON_MAX_EVENTS = 64
VIEWER_COOKIE_SALT = "streamgate.viewer"


class BeaconRefused(NotAllowed):
    """The beacon's view session is not valid for this content now (403 with a reason)."""


class BeaconInvalid(DomainError):
    """A malformed beacon body (400): ``reason`` says which rule it broke."""


# Per event kind: its number, the type it must be, and its range.
EVENT_FIELDS: dict[str, tuple[str, type, float, float]] = {
    "start": ("ttff_ms", int, 0, 120_000),
    "watched": ("seconds", float, 0, 600),
    "rebuffer": ("seconds", float, 0, 600),
    "rendition": ("height", int, 1, 8640),
}


def beacon_parse(data: object) -> tuple[str, list[dict]]:
    """The session and events of a beacon body, checked by hand rather than by DRF's nested
    serializers, which cost more than the rest of a beacon (the schema still shows
    BeaconInputSerializer). Raises BeaconInvalid with reason ``bad_body``, ``too_many_events``,
    ``bad_event`` or ``out_of_range``."""
    if not isinstance(data, dict):
        raise BeaconInvalid("A beacon is a JSON object.", reason="bad_body")
    session, events = data.get("session"), data.get("events", [])
    if not isinstance(session, str) or not 0 < len(session) <= 120:
        raise BeaconInvalid("session: the playback's view_session is required.", reason="bad_body")
    if not isinstance(events, list):
        raise BeaconInvalid("events: a list of events is required.", reason="bad_body")
    if len(events) > BEACON_MAX_EVENTS:
        raise BeaconInvalid(
            f"events: at most {BEACON_MAX_EVENTS} events a beacon.", reason="too_many_events"
        )
    return session, [_event_parse(index, event) for index, event in enumerate(events)]


def _event_parse(index: int, event: object) -> dict:
    where = f"events[{index}]"
    kind = event.get("type") if isinstance(event, dict) else None
    if not isinstance(kind, str) or kind not in EVENT_FIELDS:
        known = ", ".join(sorted(EVENT_FIELDS))
        raise BeaconInvalid(f"{where}.type: one of {known}.", reason="bad_event")
    name, kind_type, low, high = EVENT_FIELDS[kind]
    value = event.get(name)
    # JSON numbers only (no strings, no booleans); an integer field takes no fraction.
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (kind_type is int and isinstance(value, float) and not value.is_integer()):
        raise BeaconInvalid(f"{where}.{name}: a {kind} event needs a number.", reason="bad_event")
    if not (math.isfinite(value) and low <= value <= high):
        raise BeaconInvalid(
            f"{where}.{name}: {value} is out of range ({low}-{high}).", reason="out_of_range"
        )
    return {"type": kind, name: kind_type(value)}


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
    *, content_id: uuid.UUID, session_text: str, events: list[dict], address: str | None
) -> bool:
    """Record one beacon of a playback of the content; True when it counted a view. Raises
    NotFound for a content that is not (or no longer) there, and BeaconRefused when the
    session is not this server's for this content, or has expired.

    The session is checked first, with the keys alone: a valid one names a content that
    existed when it was granted, so the common case reads no content row (a later beacon is
    one statement); only a refusal or a content deleted since looks the content up."""
    now = timezone.now()
    try:
        session = session_verify(
            session_text,
            content_id=content_id.hex,
            keys=playback_keys(),
            now=now.timestamp(),
            max_age=settings.VIEW_SESSION_MAX_AGE,
        )
    except SessionRejected as error:
        if not Content.objects.filter(pk=content_id, status=ContentStatus.READY).exists():
            raise NotFound("No such content.", reason="not_found") from None
        raise BeaconRefused(str(error), reason=error.reason) from None
    totals = beacon_totals(events)
    try:
        _session_add(session, content_id=content_id, totals=totals, now=now)
        counted = totals.started and _view_count(
            session, content_id=content_id, address=address, now=now
        )
    except IntegrityError:  # the content was deleted since the grant
        raise NotFound("No such content.", reason="not_found") from None
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
    session: ViewSession, *, content_id: uuid.UUID, totals: BeaconTotals, now: datetime
) -> None:
    """Add a beacon to its session's row (the first creates it): one upsert, one statement."""
    # Watched seconds are capped by the time since the grant (at 2x speed, plus a minute).
    cap = 2 * max(0.0, now.timestamp() - session.issued) + 60
    table = PlaybackSession._meta.db_table
    least = "LEAST" if connection.vendor == "postgresql" else "MIN"
    sql = (
        f"INSERT INTO {table} AS s (session_id, content_id, viewer, started_at, updated_at, "  # noqa: S608
        "ttff_ms, watched_seconds, rebuffer_seconds, rebuffer_count, rendition_height, beacons) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1) "
        "ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at, "
        "ttff_ms = COALESCE(s.ttff_ms, excluded.ttff_ms), "
        f"watched_seconds = {least}(s.watched_seconds + excluded.watched_seconds, %s), "
        f"rebuffer_seconds = {least}(s.rebuffer_seconds + excluded.rebuffer_seconds, %s), "
        "rebuffer_count = s.rebuffer_count + excluded.rebuffer_count, "
        "rendition_height = COALESCE(excluded.rendition_height, s.rendition_height), "
        "beacons = s.beacons + 1"
    )
    started = _db_value(PlaybackSession, "started_at", now)
    params = [
        session.session_id,
        _db_value(PlaybackSession, "content", content_id),
        session.viewer,
        started,
        started,
        totals.ttff_ms,
        min(totals.watched_seconds, cap),
        min(totals.rebuffer_seconds, cap),
        totals.rebuffer_count,
        totals.rendition_height,
        cap,
        cap,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _db_value(model, field: str, value):
    """``value`` as the database takes it for ``model.field`` (uuid, datetime on SQLite)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _view_count(
    session: ViewSession, *, content_id: uuid.UUID, address: str | None, now: datetime
) -> bool:
    """Count a view for the session's viewer unless one was counted within the window (or,
    for an anonymous viewer, their address has used up its share of the window).

    The address's share is counted and used in one transaction that no other view of the same
    content and address interleaves with: on PostgreSQL under a transaction-scoped advisory
    lock on the pair, on SQLite because the window claim, a write, comes first and SQLite lets
    one writer at a time on. (Counted first and claimed apart, a burst of starts from fresh
    cookies would all read a count under the cap.)"""
    window_start = now - timedelta(seconds=settings.VIEW_WINDOW_SECONDS)
    capped = session.anonymous and address is not None
    key = address_key(address) if address else None
    view = ContentView._meta.db_table
    with transaction.atomic():
        if capped and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"views:{content_id}:{key}"],
                )
        claimed = _window_claim(
            content_id=content_id, viewer=session.viewer, now=now, since=window_start
        )
        if not claimed:
            return False
        if capped and _address_views(content_id, key, window_start) >= settings.VIEWS_PER_ADDRESS:
            transaction.set_rollback(True)  # the viewer's window stays where it was
            logger.info(
                "view not counted: address cap",
                extra={"content": str(content_id), "session": session.session_id},
            )
            return False
        # Raw SQL, as above: the ORM's statement building costs more than its run.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {view} (content_id, viewer, anonymous, address, counted_at) "  # noqa: S608
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    _db_value(ContentView, "content", content_id),
                    session.viewer,
                    session.anonymous,
                    key,
                    _db_value(ContentView, "counted_at", now),
                ],
            )
    return True


def address_key(address: str) -> str:
    """The client an address stands for when capping anonymous views: an IPv4 address, or the
    first address of an IPv6 one's /64 (a single subscriber usually holds a whole /64)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False).network_address)
    return str(parsed)


def _address_views(content_id: uuid.UUID, address: str, since: datetime) -> int:
    """Anonymous views of the content counted from ``address`` after ``since``."""
    view = ContentView._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {view} WHERE address = %s AND content_id = %s "  # noqa: S608
            "AND anonymous AND counted_at > %s",
            [
                address,
                _db_value(ContentView, "content", content_id),
                _db_value(ContentView, "counted_at", since),
            ],
        )
        return cursor.fetchone()[0]


def _window_claim(*, content_id: uuid.UUID, viewer: str, now: datetime, since: datetime) -> bool:
    """Move the viewer's window to ``now`` if its last view is older than ``since`` (or there
    is none): one atomic statement, PostgreSQL and SQLite alike."""
    table = ViewerWindow._meta.db_table
    sql = (
        f"INSERT INTO {table} (content_id, viewer, counted_at) VALUES (%s, %s, %s) "  # noqa: S608
        "ON CONFLICT (content_id, viewer) DO UPDATE SET counted_at = excluded.counted_at "
        f"WHERE {table}.counted_at <= %s RETURNING id"
    )
    params = [
        _db_value(ViewerWindow, "content", content_id),
        viewer,
        _db_value(ViewerWindow, "counted_at", now),
        _db_value(ViewerWindow, "counted_at", since),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def viewer_windows_prune(*, now: datetime | None = None) -> int:
    """Delete viewer windows that have run out: a missing row counts the next view just as an
    expired one does. (The sessions and views stay: the rollup recomputes from them.)"""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.VIEW_WINDOW_SECONDS)
    removed, _ = ViewerWindow.objects.filter(counted_at__lte=cutoff).delete()
    return removed
