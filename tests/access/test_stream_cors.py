"""CORS: a stream URL is a capability, so /stream/ answers any origin without credentials (as
hosted video platforms do), whatever the answer; the JSON API keeps its allowlist.

A player page on another origin fetches playlists and segments with XHR/fetch (hls.js, dash.js,
Shaka) and asks for byte ranges; each of those responses, errors included, must carry
``Access-Control-Allow-Origin: *`` or the browser hides it from the player."""

import pytest
from django.test import Client

from tests.access.conftest import published
from tests.access.test_playback import SEGMENT, signed

pytestmark = pytest.mark.django_db

ORIGIN = "https://player.example"
FILES = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n",
    "manifest.mpd": b"<MPD/>",
    "init-stream0.m4s": b"\0\0\0\x18ftypcmfc",
    "chunk-stream0-00001.m4s": SEGMENT,
    "storyboard/sprite-001.jpg": b"\xff\xd8jpeg",
    "storyboard.vtt": b"WEBVTT\n",
}


@pytest.fixture
def ready(media_root):
    return published(media_root, files=FILES)


def stream_path(ready, name: str, token: str | None = None) -> str:
    return f"/stream/{token or signed(ready.content)}/{ready.content.id}/{name}"


def assert_open_to_any_origin(response) -> None:
    assert response["Access-Control-Allow-Origin"] == "*", response.headers
    assert "Access-Control-Allow-Credentials" not in response
    # The answer is the same for every origin: a cache must not keep one copy per origin.
    assert "origin" not in response.get("Vary", "").lower()


@pytest.mark.parametrize("name", list(FILES))
def test_every_kind_of_stream_file_answers_any_origin(ready, name):
    response = Client().get(stream_path(ready, name), HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 200
    assert response.content == FILES[name]
    assert_open_to_any_origin(response)


def test_a_range_answer_exposes_its_range_headers(ready):
    response = Client().get(
        stream_path(ready, "chunk-stream0-00001.m4s"), HTTP_ORIGIN=ORIGIN, HTTP_RANGE="bytes=0-9"
    )
    assert response.status_code == 206
    assert response.content == SEGMENT[:10]
    assert_open_to_any_origin(response)
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"content-range", "content-length", "accept-ranges"} <= exposed
    head = Client().head(stream_path(ready, "chunk-stream0-00001.m4s"), HTTP_ORIGIN=ORIGIN)
    assert head.status_code == 200
    assert_open_to_any_origin(head)


def test_errors_answer_any_origin_so_players_can_read_them(ready):
    """A player that cannot read a 403 reports a network error instead of 'link expired'."""
    client = Client()
    expired = client.get(stream_path(ready, "master.m3u8", token="not-a-token"), HTTP_ORIGIN=ORIGIN)
    assert expired.status_code == 403
    assert expired.json()["reason"] == "bad_token"
    assert_open_to_any_origin(expired)
    missing = client.get(stream_path(ready, "chunk-stream0-00099.m4s"), HTTP_ORIGIN=ORIGIN)
    assert missing.status_code == 404
    assert_open_to_any_origin(missing)
    unsatisfiable = client.get(
        stream_path(ready, "chunk-stream0-00001.m4s"),
        HTTP_ORIGIN=ORIGIN,
        HTTP_RANGE=f"bytes={len(SEGMENT) + 10}-",
    )
    assert unsatisfiable.status_code == 416
    assert_open_to_any_origin(unsatisfiable)
    refused = client.post(stream_path(ready, "master.m3u8"), HTTP_ORIGIN=ORIGIN)
    assert refused.status_code == 405
    assert_open_to_any_origin(refused)


def test_a_range_preflight_is_answered_for_any_origin(ready):
    response = Client().options(
        stream_path(ready, "chunk-stream0-00001.m4s"),
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="range",
    )
    assert 200 <= response.status_code < 300
    assert_open_to_any_origin(response)
    methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "HEAD"} <= methods
    assert "range" in response["Access-Control-Allow-Headers"].lower()
    assert int(response["Access-Control-Max-Age"]) >= 600


def test_an_allowlisted_origin_gets_the_same_answer_without_credentials(ready, settings):
    """Cookies never open a stream (the token does): no origin, listed or not, is told to send
    them, and a signed-in browser's request is answered the same way."""
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    settings.CORS_ALLOW_CREDENTIALS = True
    client = Client()
    client.force_login(ready.content.owner)
    response = client.get(stream_path(ready, "master.m3u8"), HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 200
    assert_open_to_any_origin(response)


def test_the_api_still_refuses_an_unknown_origin(ready, settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    client = Client()
    unknown = client.get("/api/v1/contents/", HTTP_ORIGIN="https://evil.example")
    assert unknown.status_code == 200
    assert "Access-Control-Allow-Origin" not in unknown
    preflight = client.options(
        f"/api/v1/contents/{ready.content.id}/playback/",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert "Access-Control-Allow-Origin" not in preflight
    listed = client.get("/api/v1/contents/", HTTP_ORIGIN=ORIGIN)
    assert listed["Access-Control-Allow-Origin"] == ORIGIN
