"""Beacons answered before Django (apps/access/beacon_fast.py) are the answers Django's view
gives: each case goes through Django alone and through the fast layer in front of it, and the
two are compared (status, body, headers but Date, Server and the drawn X-Request-ID). Where the
layer must not answer (anything but an accepted beacon), it passes the request, body included,
and Django answers; its metric says which happened."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from prometheus_client import REGISTRY

from apps.access.beacon_fast import BeaconFast
from apps.access.models import ContentView, PlaybackSession
from streamgate.streaming import StreamingBodyASGIHandler
from tests.access.test_beacons import grant, ready  # noqa: F401 - the fixture
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db(transaction=True)

PER_REQUEST = {"date", "server", "x-request-id"}


def served() -> float:
    sample = REGISTRY.get_sample_value
    return sample("streamgate_beacon_fast_responses_total", {"outcome": "served"}) or 0


def post(app, path: str, body: bytes, **headers: str) -> dict:
    return _post_host(app, path, body, "testserver", **headers)


def both(path: str, body_for, **headers):
    """(Django's answer, the layer's answer, whether the layer answered it). ``body_for()``
    gives a fresh body for each (a new session: the two must not share a view)."""
    django_app = StreamingBodyASGIHandler()
    reference = post(django_app, path, body_for(), **headers)
    before = served()
    answer = post(BeaconFast(django_app), path, body_for(), **headers)
    return reference, answer, served() > before


def same(reference: dict, answer: dict) -> None:
    assert answer["status"] == reference["status"]
    assert answer["body"] == reference["body"]
    theirs = {k: v for k, v in reference["headers"].items() if k not in PER_REQUEST}
    ours = {k: v for k, v in answer["headers"].items() if k not in PER_REQUEST}
    assert ours == theirs
    assert "x-request-id" in answer["headers"]


def beacon_body(content, events=None):
    from rest_framework.test import APIClient

    def make() -> bytes:
        session = grant(APIClient(), content)
        return json.dumps(
            {"session": session, "events": events or [{"type": "start", "ttff_ms": 500}]}
        ).encode()

    return make


@pytest.mark.parametrize(
    "headers",
    [
        {"content_type": "application/json"},
        {"content_type": "text/plain;charset=UTF-8"},  # navigator.sendBeacon with a string
        {"content_type": "text/plain;charset=UTF-8", "origin": "http://testserver"},
    ],
    ids=["fetch", "sendbeacon", "same-origin"],
)
def test_an_accepted_beacon_is_answered_as_django_answers_it(ready, headers):  # noqa: F811
    path = f"/api/v1/contents/{ready.id}/beacons/"
    reference, answer, fast = both(path, beacon_body(ready), **headers)
    assert reference["status"] == 204, reference
    same(reference, answer)
    assert fast
    # Both recorded their session and counted their view (two viewers: no cookie each).
    assert PlaybackSession.objects.filter(content=ready).count() == 2
    assert ContentView.objects.filter(content=ready).count() == 2


def _bad(content, text: str):
    return lambda: text.encode()


@pytest.mark.parametrize(
    ("case", "headers", "status"),
    [
        ("not json", {"content_type": "application/json"}, 400),
        ("bad session", {"content_type": "application/json"}, 403),
        ("bad event", {"content_type": "application/json"}, 400),
        ("nan", {"content_type": "application/json"}, 400),
        ("too large", {"content_type": "application/json"}, 413),
        ("deep", {"content_type": "application/json"}, 400),
        ("form", {"content_type": "application/x-www-form-urlencoded"}, 415),
        (
            "other origin",
            {"content_type": "application/json", "origin": "https://evil.example"},
            204,
        ),
        ("bad host", {"content_type": "application/json", "host": "evil.example"}, 400),
    ],
)
def test_everything_else_is_django_s_answer(ready, case, headers, status):  # noqa: F811
    path = f"/api/v1/contents/{ready.id}/beacons/"
    good = beacon_body(ready)
    bodies = {
        "not json": lambda: b"{not json",
        "bad session": lambda: b'{"session": "forged", "events": []}',
        "bad event": lambda: (
            json.loads(good())
            and json.dumps(
                {**json.loads(good()), "events": [{"type": "start", "ttff_ms": -1}]}
            ).encode()
        ),
        "nan": lambda: good().replace(b"500", b"NaN"),
        "too large": lambda: good()[:-1] + b"," + b" " * 9000 + b"}",
        "deep": lambda: b"[" * 100 + b"]" * 100,
        "form": good,
        "other origin": good,
        "bad host": good,
    }
    if case == "bad host":
        headers = {**headers}
        host = headers.pop("host")
        django_app = StreamingBodyASGIHandler()
        sent = {"content_type": headers["content_type"]}
        reference = _post_host(django_app, path, bodies[case](), host, **sent)
        before = served()
        answer = _post_host(BeaconFast(django_app), path, bodies[case](), host, **sent)
        fast = served() > before
    else:
        reference, answer, fast = both(path, bodies[case], **headers)
    assert reference["status"] == status, reference
    assert not fast
    same(reference, answer)


def _post_host(app, path, body, host, **headers):
    sent = [(b"host", host.encode()), (b"content-length", str(len(body)).encode())]
    sent += [(n.replace("_", "-").lower().encode(), v.encode()) for n, v in headers.items()]

    async def go():
        return await HttpCommunicator(app, "POST", path, body=body, headers=sent).get_response(
            timeout=10
        )

    response = async_to_sync(go)()
    response["headers"] = {n.decode().lower(): v.decode() for n, v in response["headers"]}
    return response


def test_a_content_gone_is_django_s_404(media_root):
    content = ContentFactory()
    path = f"/api/v1/contents/{content.id}/beacons/"
    reference, answer, fast = both(
        path, lambda: b'{"session": "x.y", "events": []}', content_type="application/json"
    )
    assert reference["status"] in (403, 404)
    assert not fast
    same(reference, answer)


def test_the_rate_limit_holds_across_both_paths(ready, monkeypatch):  # noqa: F811
    """The layer counts in the view's own throttle entries: the limit is one for both."""
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**ScopedRateThrottle.THROTTLE_RATES, "beacons": "3/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.delete_pattern("throttle_*")
    try:
        django_app = StreamingBodyASGIHandler()
        path = f"/api/v1/contents/{ready.id}/beacons/"
        body = beacon_body(ready, [{"type": "watched", "seconds": 1}])
        fast = BeaconFast(django_app)
        kind = {"content_type": "application/json"}
        statuses = [post(fast, path, body(), **kind)["status"] for _ in range(3)]
        statuses.append(post(django_app, path, body(), **kind)["status"])
        refused = post(fast, path, body(), **kind)
        statuses.append(refused["status"])
        assert statuses == [204, 204, 204, 429, 429]
        assert int(refused["headers"]["retry-after"]) > 0
    finally:
        cache.delete_pattern("throttle_*")
