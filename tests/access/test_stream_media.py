"""A player's walk through real packaged output behind a token: HLS master -> media playlist ->
init segment and segments, and DASH MPD -> templates, from disk and from S3."""

import time
import urllib.request
from urllib.parse import parse_qs, urljoin, urlsplit
from xml.etree import ElementTree

import m3u8
import pytest
from django.test import Client

from tests.support.media import make_video
from tests.transcode.conftest import TEST_LADDER, encode

pytestmark = pytest.mark.django_db

MPD_NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}


@pytest.fixture(autouse=True)
def _fast_transcodes(settings, tmp_path):
    # The token path's clear mode (contents from before encryption, or MEDIA_ENCRYPTION=0);
    # encrypted media are walked by tests/web/test_players.py and tests/access/test_content_keys.py.
    settings.MEDIA_ENCRYPTION = False
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER[-2:]  # 480p and 360p
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "clip.mp4", seconds=5, size="854x480")


def playback(content) -> dict:
    response = Client().post(f"/api/v1/contents/{content.id}/playback/")
    assert response.status_code == 200, response.content
    return response.json()


def fetch(client: Client, url: str) -> bytes:
    """GET as a player does: follow a redirect off-site (to S3) with a plain HTTP client."""
    response = client.get(urlsplit(url).path)
    if response.status_code == 302:
        with urllib.request.urlopen(response["Location"], timeout=10) as remote:
            return remote.read()
    assert response.status_code == 200, (url, response.status_code)
    return response.content


def walk_hls(master_url: str) -> dict[str, int]:
    """Every variant's playlist, init segment and segments, by relative URI; bytes per variant."""
    client = Client()
    master = m3u8.loads(fetch(client, master_url).decode(), uri=master_url)
    assert master.is_variant
    assert len(master.playlists) == 2
    assert [media.type for media in master.media] == ["AUDIO"]
    received = {}
    for uri in [variant.uri for variant in master.playlists] + [m.uri for m in master.media]:
        playlist_url = urljoin(master_url, uri)
        media = m3u8.loads(fetch(client, playlist_url).decode(), uri=playlist_url)
        assert media.is_endlist
        assert media.segment_map, "CMAF playlists name their init segment"
        total = len(fetch(client, urljoin(playlist_url, media.segment_map[0].uri)))
        for segment in media.segments:
            total += len(fetch(client, urljoin(playlist_url, segment.uri)))
        assert 4.5 < sum(s.duration for s in media.segments) < 5.5
        received[uri] = total
    return received


def walk_dash(mpd_url: str) -> int:
    client = Client()
    mpd = ElementTree.fromstring(fetch(client, mpd_url))  # noqa: S314 - our own output
    fetched = 0
    for representation in mpd.iterfind(".//mpd:Representation", MPD_NS):
        template = representation.find("../mpd:SegmentTemplate", MPD_NS)
        if template is None:
            template = representation.find("mpd:SegmentTemplate", MPD_NS)
        rep_id = representation.get("id")
        init = template.get("initialization").replace("$RepresentationID$", rep_id)
        first = (
            template.get("media")
            .replace("$RepresentationID$", rep_id)
            .replace("$Number%05d$", f"{int(template.get('startNumber', '1')):05d}")
        )
        for name in (init, first):
            assert fetch(client, urljoin(mpd_url, name))
            fetched += 1
    return fetched


def test_an_hls_and_a_dash_player_walk_the_ladder_from_disk(clip, media_root):
    content, job = encode(clip)
    urls = playback(content)
    received = walk_hls(urls["hls_url"])
    folder = media_root / job.output_prefix
    on_disk = sum(p.stat().st_size for p in folder.glob("*.m4s"))
    assert sum(received.values()) == on_disk  # every segment of every rung, byte for byte
    assert walk_dash(urls["dash_url"]) == 6  # init + first segment of 2 video rungs and audio


def test_the_same_walk_from_s3_relays_manifests_and_redirects_segments(clip, s3_storage):
    content, job = encode(clip)
    urls = playback(content)
    client = Client()
    master = client.get(urlsplit(urls["hls_url"]).path)
    assert master.status_code == 200  # relayed: its relative URIs must resolve against us
    segment = client.get(urlsplit(urls["hls_url"]).path.replace("master.m3u8", "init-stream0.m4s"))
    assert segment.status_code == 302
    query = parse_qs(urlsplit(segment["Location"]).query)
    assert query["Signature"]  # presigned, and short-lived
    assert 0 < int(query["Expires"][0]) - time.time() <= 120
    assert segment["Cache-Control"] == "private, no-store"
    received = walk_hls(urls["hls_url"])
    stored = sum(
        item.size
        for item in s3_storage.objects.filter(Prefix=job.output_prefix)
        if item.key.endswith(".m4s")
    )
    assert sum(received.values()) == stored
    assert walk_dash(urls["dash_url"]) == 6
