"""Captions reach players through the manifests of a real encode, added and removed after it
(no re-encode): the HLS master gains a SUBTITLES group named by every variant, each language a
VOD playlist whose one segment is the whole WebVTT file with the header that aligns it with the
CMAF media; the MPD gains a text adaptation set per language. All of it under the playback
token, as the segments are; strict parsers (hls-parser, mpegdash) read what is served."""

import json
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from mpegdash.parser import MPEGDASHParser

from apps.access.playback import playback_key_id, playback_keys
from apps.access.playback_tokens import PlaybackGrant, token_sign
from apps.access.stream_fast import StreamFiles
from streamgate.metrics import STREAM_FAST_RESPONSES
from streamgate.streaming import StreamingBodyASGIHandler
from tests.factories import CreatorFactory
from tests.support.edge_client import asgi_get
from tests.support.media import make_video
from tests.support.processes import ROOT
from tests.transcode.conftest import TEST_LADDER, encode

pytestmark = pytest.mark.django_db

HLS_STRICT = ROOT / "tests" / "support" / "hls_strict.js"
SRT = "1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,500\nWorld\n"
VTT = "WEBVTT\n\n00:00.500 --> 00:01.500\nBonjour\n"


def strict(tmp_path, files: dict[str, bytes]) -> dict:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = subprocess.run(
        ["node", str(HLS_STRICT), *(str(tmp_path / name) for name in files)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {name.rsplit("/", 1)[-1]: value for name, value in json.loads(result.stdout).items()}


@pytest.fixture
def encoded(settings, tmp_path):
    settings.TRANSCODE_LADDER = TEST_LADDER[-2:]
    owner = CreatorFactory()
    content, job = encode(make_video(tmp_path / "clip.mp4", seconds=5, size="640x360"), owner=owner)
    assert job.state == "succeeded", content.error
    return content


def add(client, content, data: str, language: str, label: str = "") -> dict:
    response = client.post(
        f"/api/v1/contents/{content.id}/captions/",
        {"file": SimpleUploadedFile("c.srt", data.encode()), "language": language, "label": label},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_captions_are_offered_in_both_manifests_and_served_under_the_token(
    encoded, client_for, tmp_path, django_capture_on_commit_callbacks
):
    owner = client_for(encoded.owner)
    english = add(owner, encoded, SRT, "en")
    french = add(owner, encoded, VTT, "fr", label='Français "doublé"')
    urls = Client().post(f"/api/v1/contents/{encoded.id}/playback/").json()
    base = urlsplit(urls["hls_url"]).path.removesuffix("master.m3u8")
    viewer = Client()

    master = viewer.get(base + "master.m3u8")
    assert master.status_code == 200
    assert master["Content-Type"] == "application/vnd.apple.mpegurl"
    subtitle_playlist = viewer.get(f"{base}subs/{english['id']}.m3u8")
    assert subtitle_playlist.status_code == 200
    parsed = strict(
        tmp_path, {"master.m3u8": master.content, "subtitles.m3u8": subtitle_playlist.content}
    )
    variants = parsed["master.m3u8"]["variants"]
    assert variants
    for variant in variants:
        assert variant["subtitles"] == [
            {
                "uri": f"subs/{english['id']}.m3u8",
                "language": "en",
                "name": "English",
                "groupId": "subs",
            },
            {
                "uri": f"subs/{french['id']}.m3u8",
                "language": "fr",
                "name": "Français \u2019doublé\u2019",  # no straight quote in a quoted-string
                "groupId": "subs",
            },
        ]
    text = master.content.decode()
    assert "DEFAULT=NO,AUTOSELECT=YES" in text
    playlist = parsed["subtitles.m3u8"]
    assert playlist["endlist"] is True
    assert playlist["playlistType"] == "VOD"
    (segment,) = playlist["segments"]
    assert segment["uri"] == f"{english['id']}.vtt"
    assert abs(segment["duration"] - encoded.duration) < 0.01
    assert playlist["targetDuration"] >= segment["duration"]

    vtt = viewer.get(f"{base}subs/{english['id']}.vtt")
    assert vtt.status_code == 200
    assert vtt["Content-Type"] == "text/vtt"
    # The CMAF media start at presentation time 0 (the MPD's first <S t="0">): cue time 0 is
    # MPEG-TS time 0.
    assert vtt.content.decode() == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
        "00:00:01.000 --> 00:00:02.000\nHello\n\n00:00:03.000 --> 00:00:04.500\nWorld\n"
    )

    mpd_response = viewer.get(base + "manifest.mpd")
    assert mpd_response["Content-Type"] == "application/dash+xml"
    (tmp_path / "manifest.mpd").write_bytes(mpd_response.content)
    mpd = MPEGDASHParser.parse(str(tmp_path / "manifest.mpd"))
    texts = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "text"]
    assert [(a.lang, a.mime_type) for a in texts] == [("en", "text/vtt"), ("fr", "text/vtt")]
    assert [a.representations[0].base_urls[0].base_url_value for a in texts] == [
        f"subs/{english['id']}.vtt",
        f"subs/{french['id']}.vtt",
    ]
    kinds = [a.content_type for a in mpd.periods[0].adaptation_sets]
    assert kinds == ["video", "audio", "text", "text"]

    # Removed after encoding: gone from the next manifests, its files no longer served.
    with django_capture_on_commit_callbacks(execute=True):
        owner.delete(f"/api/v1/contents/{encoded.id}/captions/{french['id']}/")
    assert f"subs/{french['id']}" not in viewer.get(base + "master.m3u8").content.decode()
    assert viewer.get(f"{base}subs/{french['id']}.vtt").status_code == 404
    assert viewer.get(f"{base}subs/{french['id']}.m3u8").status_code == 404
    assert b'lang="fr"' not in viewer.get(base + "manifest.mpd").content


def test_caption_files_need_the_playback_token(encoded, client_for, settings):
    caption = add(client_for(encoded.owner), encoded, SRT, "en")
    kid = playback_key_id()
    grant = PlaybackGrant(
        content_id=str(encoded.id),
        job_id=encoded.published_job_id.hex,
        subject="-",
        expires=int(time.time()) - 1,
    )
    expired = token_sign(grant, kid=kid, key=playback_keys()[kid])
    viewer = Client()
    for token in (expired, "not-a-token"):
        for name in (f"subs/{caption['id']}.vtt", f"subs/{caption['id']}.m3u8", "master.m3u8"):
            response = viewer.get(f"/stream/{token}/{encoded.id}/{name}")
            assert response.status_code == 403, name
            assert response.json()["reason"] == "bad_token"
    # The fast path in front of Django leaves every caption-aware file to the view.
    good = urlsplit(
        Client().post(f"/api/v1/contents/{encoded.id}/playback/").json()["hls_url"]
    ).path.removesuffix("master.m3u8")
    fast = StreamFiles(StreamingBodyASGIHandler())
    passed = STREAM_FAST_RESPONSES.labels(outcome="pass")
    for name in ("master.m3u8", "manifest.mpd", f"subs/{caption['id']}.m3u8"):
        before = passed._value.get()
        asgi_get(fast, good + name)  # (Django answers in a thread outside this test's transaction)
        assert passed._value.get() == before + 1, name
    assert viewer.get(good + "subs/not-a-caption.vtt").status_code == 404


def test_captions_on_s3_are_stored_relayed_and_deleted(
    s3_storage, settings, tmp_path, client_for, django_capture_on_commit_callbacks
):
    settings.TRANSCODE_LADDER = TEST_LADDER[-1:]
    clip = make_video(tmp_path / "clip.mp4", seconds=3, size="640x360")
    content, job = encode(clip, owner=CreatorFactory())
    assert job.state == "succeeded", content.error
    owner = client_for(content.owner)
    caption = add(owner, content, SRT, "de")
    stored = s3_storage.Object(f"captions/{content.id}/{caption['id']}.vtt")
    assert stored.content_type == "text/vtt"
    assert stored.get()["Body"].read().startswith(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000")
    urls = Client().post(f"/api/v1/contents/{content.id}/playback/").json()
    base = urlsplit(urls["hls_url"]).path.removesuffix("master.m3u8")
    viewer = Client()
    assert f"subs/{caption['id']}.m3u8".encode() in viewer.get(base + "master.m3u8").content
    vtt = viewer.get(f"{base}subs/{caption['id']}.vtt")
    assert vtt.status_code == 200  # relayed (it gets its timestamp map), not redirected
    assert vtt.content.startswith(b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")
    assert b'lang="de"' in viewer.get(base + "manifest.mpd").content
    with django_capture_on_commit_callbacks(execute=True):
        owner.delete(f"/api/v1/contents/{content.id}/captions/{caption['id']}/")
    assert not list(s3_storage.objects.filter(Prefix=f"captions/{content.id}/"))
    assert viewer.get(f"{base}subs/{caption['id']}.vtt").status_code == 404


def test_names_in_a_group_are_unique_without_quotes():
    """RFC 8216: names differ within a group; a straight quote would end hls-parser's string."""
    from apps.transcode.subtitles import SubtitleTrack, _names

    tracks = [
        SubtitleTrack("a", "en", "Subs (fr)"),
        SubtitleTrack("b", "de", "Subs"),
        SubtitleTrack("c", "fr", "Subs"),
        SubtitleTrack("d", "it", "Subs (fr)"),
    ]
    names = _names(tracks)
    assert len(set(names)) == 4
    assert not any("'" in name or '"' in name for name in names)
    assert names == ["Subs (fr)", "Subs", "Subs (fr) 2", "Subs (fr) (it)"]
