"""Beacons and views: a view needs a playback grant, counts once per viewer per window, and
reaches the API's ``views`` through the rollup; every refusal answers a JSON 4xx."""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.access.models import ContentView, PlaybackSession, ViewerWindow
from apps.access.tasks import access_prune, views_rollup
from streamgate.versions import PUBLIC, versions_read
from tests.access.conftest import published
from tests.factories import UserFactory, WalletFactory

pytestmark = pytest.mark.django_db

START = [{"type": "start", "ttff_ms": 640}]


@pytest.fixture
def ready(media_root):
    return published(media_root).content


def grant(client, content) -> str:
    response = client.post(f"/api/v1/contents/{content.id}/playback/")
    assert response.status_code == 200, response.content
    return response.json()["view_session"]


def beacon(client, content, session, events=START, **kwargs):
    return client.post(
        f"/api/v1/contents/{content.id}/beacons/",
        json.dumps({"session": session, "events": events}),
        content_type=kwargs.pop("content_type", "application/json"),
        **kwargs,
    )


def views_of(content) -> int:
    return ContentView.objects.filter(content=content).count()


def test_a_view_counts_once_per_viewer_window_and_again_after_it(ready, time_machine):
    time_machine.move_to("2026-11-30 10:00:00+00:00", tick=False)
    client = APIClient()
    session = grant(client, ready)
    assert beacon(client, ready, session).status_code == 204
    assert beacon(client, ready, session).status_code == 204  # the same start again
    assert beacon(client, ready, grant(client, ready)).status_code == 204  # a replay, same cookie
    assert views_of(ready) == 1
    time_machine.move_to("2026-11-30 10:29:00+00:00", tick=False)
    assert beacon(client, ready, grant(client, ready)).status_code == 204
    assert views_of(ready) == 1
    time_machine.move_to("2026-11-30 10:31:00+00:00", tick=False)  # the window has passed
    assert beacon(client, ready, grant(client, ready)).status_code == 204
    assert views_of(ready) == 2
    # Housekeeping drops windows that have run out; the next view counts all the same.
    time_machine.move_to("2026-11-30 11:02:00+00:00", tick=False)
    assert access_prune.apply().get()["viewer_windows"] == 1
    assert not ViewerWindow.objects.exists()
    assert beacon(client, ready, grant(client, ready)).status_code == 204
    assert views_of(ready) == 3
    # A beacon without a start (progress only) never counts a view.
    time_machine.move_to("2026-11-30 11:40:00+00:00", tick=False)  # a window on
    later = grant(client, ready)
    assert beacon(client, ready, later, [{"type": "watched", "seconds": 30}]).status_code == 204
    assert views_of(ready) == 3


def test_anonymous_viewers_are_told_apart_by_cookie_and_capped_per_address(ready, settings):
    settings.VIEWS_PER_ADDRESS = 2
    first = APIClient()
    response = first.post(f"/api/v1/contents/{ready.id}/playback/")
    cookie = response.cookies[settings.VIEWER_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert beacon(first, ready, response.json()["view_session"]).status_code == 204
    for _ in range(3):  # cookies cleared each time: new viewers, one address
        fresh = APIClient()
        assert beacon(fresh, ready, grant(fresh, ready)).status_code == 204
    assert views_of(ready) == 2
    other_address = APIClient(REMOTE_ADDR="10.0.0.7")
    assert beacon(other_address, ready, grant(other_address, ready)).status_code == 204
    assert views_of(ready) == 3


def test_a_signed_in_viewer_is_one_viewer_on_every_device(ready, client_for):
    viewer, other = UserFactory(), UserFactory()
    phone, laptop = client_for(viewer), client_for(viewer)
    assert beacon(phone, ready, grant(phone, ready)).status_code == 204
    assert beacon(laptop, ready, grant(laptop, ready)).status_code == 204
    assert views_of(ready) == 1
    third = client_for(other)
    assert beacon(third, ready, grant(third, ready)).status_code == 204
    assert views_of(ready) == 2
    assert set(ContentView.objects.values_list("anonymous", flat=True)) == {False}


def test_gated_content_counts_only_viewers_who_passed_the_gate(media_root, client_for):
    account = "0x" + "56" * 20
    gated = published(media_root, gate={"allowlist": {"accounts": [f"eip155:1:{account}"]}})
    stranger = client_for(UserFactory())
    assert stranger.post(f"/api/v1/contents/{gated.content.id}/playback/").status_code == 403
    holder = UserFactory()
    WalletFactory(user=holder, address=account)
    member = client_for(holder)
    assert beacon(member, gated.content, grant(member, gated.content)).status_code == 204
    assert views_of(gated.content) == 1


def test_beacons_need_no_csrf_token_and_take_sendbeacon_text(ready, client_for):
    viewer = UserFactory()
    session = grant(client_for(viewer), ready)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(viewer)
    response = beacon(browser, ready, session, content_type="text/plain;charset=UTF-8")
    assert response.status_code == 204, response.content
    assert views_of(ready) == 1


def test_qoe_adds_up_per_session_and_watch_time_is_capped(ready):
    client = APIClient()
    session = grant(client, ready)
    events = [
        {"type": "start", "ttff_ms": 900},
        {"type": "rendition", "height": 480},
        {"type": "rebuffer", "seconds": 1.5},
        {"type": "watched", "seconds": 20},
    ]
    assert beacon(client, ready, session, events).status_code == 204
    second = [{"type": "start", "ttff_ms": 5}, {"type": "watched", "seconds": 30}]
    assert beacon(client, ready, session, second).status_code == 204
    row = PlaybackSession.objects.get(content=ready)
    assert (row.ttff_ms, row.rendition_height, row.beacons) == (900, 480, 2)  # the first TTFF
    assert (row.watched_seconds, row.rebuffer_seconds, row.rebuffer_count) == (50, 1.5, 1)
    # Claims beyond the time since the grant (2x speed, plus a minute) are dropped.
    assert beacon(client, ready, session, [{"type": "watched", "seconds": 600}]).status_code == 204
    row.refresh_from_db()
    assert 60 <= row.watched_seconds < 65


@pytest.mark.parametrize(
    ("events", "reason", "where"),
    [
        ([{"type": "start", "ttff_ms": -1}], "out_of_range", "events[0].ttff_ms"),
        ([{"type": "start", "ttff_ms": 120_001}], "out_of_range", "events[0].ttff_ms"),
        ([{"type": "start", "ttff_ms": 1.5}], "bad_event", "events[0].ttff_ms"),
        ([START[0], {"type": "watched", "seconds": 600.5}], "out_of_range", "events[1].seconds"),
        ([{"type": "watched", "seconds": "NaN"}], "bad_event", "events[0].seconds"),
        ([{"type": "watched", "seconds": True}], "bad_event", "events[0].seconds"),
        ([{"type": "rebuffer", "seconds": -0.1}], "out_of_range", "events[0].seconds"),
        ([{"type": "rendition", "height": 0}], "out_of_range", "events[0].height"),
        ([{"type": "watched"}], "bad_event", "events[0].seconds"),
        ([{"type": "seek", "seconds": 1}], "bad_event", "events[0].type"),
        (["start"], "bad_event", "events[0].type"),
        ({"type": "start"}, "bad_body", "events:"),
        ([{"type": "watched", "seconds": 1}] * 65, "too_many_events", "at most 64"),
    ],
)
def test_out_of_range_or_malformed_events_are_refused(ready, events, reason, where):
    client = APIClient()
    response = beacon(client, ready, grant(client, ready), events)
    assert response.status_code == 400
    assert response.json()["reason"] == reason
    assert where in response.json()["detail"]
    assert views_of(ready) == 0


def test_every_refusal_is_a_json_4xx_with_a_reason(ready, media_root, time_machine):
    time_machine.move_to("2026-11-30 10:00:00+00:00", tick=False)
    client = APIClient()
    session = grant(client, ready)
    url = f"/api/v1/contents/{ready.id}/beacons/"

    def refused(response, status: int, reason: str | None = None):
        assert response.status_code == status, response.content
        if reason:
            assert response.json()["reason"] == reason, response.json()

    unknown = "00000000-0000-4000-8000-000000000000"
    refused(
        client.post(
            f"/api/v1/contents/{unknown}/beacons/",
            {"session": session, "events": []},
            format="json",
        ),
        404,
        "not_found",
    )
    refused(beacon(client, ready, "k0.abc.a123456789.0123456789abcdef." + "A" * 22), 403)
    refused(beacon(client, ready, "not a session"), 403, "session_invalid")
    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    refused(beacon(client, ready, tampered), 403, "session_invalid")
    other = published(media_root).content
    refused(beacon(client, other, session), 403, "session_invalid")  # for another content
    refused(client.post(url, [session], format="json"), 400, "bad_body")
    refused(client.post(url, "{", content_type="application/json"), 400, "parse_error")
    big = json.dumps({"session": session, "events": [], "pad": "x" * 9000})
    refused(client.post(url, big, content_type="text/plain"), 413, "too_large")
    refused(client.post(url, "x", content_type="application/xml"), 415)
    refused(client.post(url, {"events": []}, format="json"), 400, "bad_body")
    refused(client.post(url, {"session": "x" * 121}, format="json"), 400, "bad_body")
    time_machine.move_to("2026-11-30 18:00:01+00:00", tick=False)  # 8 h later
    refused(beacon(client, ready, session), 403, "session_expired")
    assert views_of(ready) == 0


def test_beacons_are_rate_limited_per_address(ready, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**ScopedRateThrottle.THROTTLE_RATES, "beacons": "2/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.delete_pattern("throttle_*")
    client = APIClient()
    session = grant(client, ready)
    assert beacon(client, ready, session).status_code == 204
    assert beacon(client, ready, session).status_code == 204
    response = beacon(client, ready, session)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    cache.delete_pattern("throttle_*")


def test_views_reach_the_cached_api_through_the_rollup_only(ready, client_for, settings):
    reader = client_for(UserFactory())
    detail = f"/api/v1/contents/{ready.id}/"
    assert reader.get(detail).json()["views"] == 0  # now cached
    before = versions_read([PUBLIC])
    client = APIClient()
    assert beacon(client, ready, grant(client, ready)).status_code == 204
    assert versions_read([PUBLIC]) == before  # beacons move no cache version
    assert reader.get(detail).json()["views"] == 0
    assert views_rollup.apply().get() == {"contents": 1, "changed": 1}
    assert versions_read([PUBLIC]) != before
    assert reader.get(detail).json()["views"] == 1
    listed = reader.get("/api/v1/contents/?status=ready").json()["results"]
    assert [c["views"] for c in listed if c["id"] == str(ready.id)] == [1]
    moved = versions_read([PUBLIC])
    assert views_rollup.apply().get() == {"contents": 1, "changed": 0}
    assert versions_read([PUBLIC]) == moved  # nothing changed, nothing moved
    # Beat runs the rollup at least once a minute: the API is at most that far behind.
    schedule = settings.CELERY_BEAT_SCHEDULE["views-rollup"]
    assert schedule["task"] == "apps.access.tasks.views_rollup"
    assert schedule["schedule"] <= 60


def test_qoe_numbers_reach_the_studio_and_metrics(ready, client_for):
    for index, ttff in enumerate([100, 200, 300, 400, 2000]):
        client = APIClient(REMOTE_ADDR=f"10.1.0.{index + 1}")
        events = [
            {"type": "start", "ttff_ms": ttff},
            {"type": "watched", "seconds": 19},
            {"type": "rebuffer", "seconds": 1},
        ]
        assert beacon(client, ready, grant(client, ready), events).status_code == 204
    views_rollup.apply().get()
    stats = ready.__class__.objects.get(pk=ready.pk).view_stats
    assert (stats.views, stats.unique_viewers, stats.sessions) == (5, 5, 5)
    assert (stats.ttff_p50_ms, stats.ttff_p95_ms) == (300, 2000)
    assert stats.watch_seconds == 95
    assert stats.rebuffer_ratio == 0.05

    owner = Client()
    owner.force_login(ready.owner)
    page = owner.get(f"/studio/{ready.id}/stats/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="views">5<' in html
    assert 'data-testid="viewers">5<' in html
    assert 'data-testid="ttff-p50">0.30 s<' in html
    assert 'data-testid="ttff-p95">2.00 s<' in html
    assert 'data-testid="rebuffer">5.00 %<' in html
    assert 'data-testid="watch-time">1 min 35 s<' in html
    assert 'aria-label="Views per day, last 30 days: 5 in total"' in html
    stranger = Client()
    stranger.force_login(UserFactory())
    assert stranger.get(f"/studio/{ready.id}/stats/").status_code == 404

    metrics = Client().get("/metrics").content.decode()
    assert 'streamgate_playback_ttff_seconds_bucket{le="0.25"}' in metrics
    assert "streamgate_playback_rebuffer_ratio_bucket" in metrics
    assert "streamgate_views_total" in metrics


@pytest.mark.django_db(transaction=True)
def test_a_beacon_for_a_content_deleted_since_its_grant_is_not_found(media_root):
    content = published(media_root).content
    client = APIClient()
    session = grant(client, content)
    content.delete()
    response = beacon(client, content, session)
    assert response.status_code == 404
    assert response.json()["reason"] == "not_found"
    assert not PlaybackSession.objects.exists()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("not an address", "not an address"),
    ],
)
def test_an_ipv6_subscriber_is_one_address(address, key):
    from apps.access.audience import address_key

    assert address_key(address) == key


def test_one_ipv6_64_shares_the_cap(ready, settings):
    settings.VIEWS_PER_ADDRESS = 2
    for host in range(1, 6):  # fresh cookies from five addresses of one /64
        client = APIClient(REMOTE_ADDR=f"2001:db8:1:2::{host}")
        assert beacon(client, ready, grant(client, ready)).status_code == 204
    assert views_of(ready) == 2


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_fresh_cookies_from_one_address_stays_under_the_cap(media_root, settings):
    """Sessions granted first, their starts sent all at once from threads (each its own
    database connection): the address's share is counted and used without interleaving."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    settings.VIEWS_PER_ADDRESS = 3
    content = published(media_root).content
    clients = [APIClient() for _ in range(12)]
    sessions = [grant(client, content) for client in clients]

    def start(pair):
        client, session = pair
        try:
            return beacon(client, content, session).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(start, zip(clients, sessions, strict=True)))
    assert statuses == [204] * 12
    assert views_of(content) == 3
