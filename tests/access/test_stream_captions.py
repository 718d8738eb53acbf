"""What the stream answers about captions when something is missing or broken: a caption that
is not this content's, a manifest gone from storage, a caption file storage cannot read, a
manifest our timeline reader cannot use."""

import pytest
from django.test import Client

from apps.content.models import Caption
from apps.content.services import caption_create
from tests.access.conftest import published
from tests.access.test_playback import signed

pytestmark = pytest.mark.django_db

VTT = b"WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n"
MPD = (
    b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
    b'mediaPresentationDuration="PT6.5S"><Period id="0"><AdaptationSet id="0" '
    b'contentType="video"><Representation id="0"><SegmentTemplate timescale="1000" '
    b'presentationTimeOffset="0"><SegmentTimeline><S t="80" d="4000"/></SegmentTimeline>'
    b"</SegmentTemplate></Representation></AdaptationSet></Period></MPD>"
)
MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n"


@pytest.fixture
def ready(media_root):
    return published(media_root, files={"master.m3u8": MASTER, "manifest.mpd": MPD})


def url(ready, name: str) -> str:
    return f"/stream/{signed(ready.content)}/{ready.content.id}/{name}"


def test_the_timeline_comes_from_the_published_mpd(ready):
    caption = caption_create(content=ready.content, data=VTT, language="en")
    playlist = Client().get(url(ready, f"subs/{caption.id}.m3u8")).content.decode()
    assert "#EXT-X-TARGETDURATION:7\n" in playlist
    assert "#EXTINF:6.500,\n" in playlist
    vtt = Client().get(url(ready, f"subs/{caption.id}.vtt")).content.decode()
    # The video's first sample at 80 ms: cue time 0 is MPEG-TS 7200.
    assert vtt.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:7200,LOCAL:00:00:00.000\n\n")
    head = Client().head(url(ready, f"subs/{caption.id}.vtt"))
    assert head.status_code == 200
    assert head.content == b""
    assert int(head["Content-Length"]) == len(vtt.encode())


def test_another_contents_caption_is_not_found(ready, media_root):
    other = published(media_root)
    theirs = caption_create(content=other.content, data=VTT, language="en")
    for name in (f"subs/{theirs.id}.vtt", f"subs/{theirs.id}.m3u8", "subs/x.vtt"):
        response = Client().get(url(ready, name))
        assert response.status_code == 404, name


def test_a_manifest_missing_from_storage_is_not_found(ready):
    caption_create(content=ready.content, data=VTT, language="en")
    (ready.folder / "master.m3u8").unlink()
    (ready.folder / "manifest.mpd").unlink()
    assert Client().get(url(ready, "master.m3u8")).status_code == 404
    assert Client().get(url(ready, "manifest.mpd")).status_code == 404
    caption = Caption.objects.get()
    assert Client().get(url(ready, f"subs/{caption.id}.vtt")).status_code == 404


def test_a_caption_file_storage_cannot_read_is_a_503(ready, media_root):
    caption = caption_create(content=ready.content, data=VTT, language="en")
    stored = media_root / caption.path
    stored.unlink()
    stored.symlink_to(stored.name)  # a link loop: storage is there but cannot be read
    response = Client().get(url(ready, f"subs/{caption.id}.vtt"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["reason"] == "storage"


def test_a_manifest_without_a_video_timeline_is_served_as_stored(ready, caplog):
    caption = caption_create(content=ready.content, data=VTT, language="en")
    (ready.folder / "manifest.mpd").write_bytes(b"<MPD/>")
    assert Client().get(url(ready, "manifest.mpd")).content == b"<MPD/>"
    assert Client().get(url(ready, f"subs/{caption.id}.m3u8")).status_code == 404
    assert "no media timeline for captions" in caplog.text
    (ready.folder / "manifest.mpd").write_bytes(b"not xml")
    assert Client().get(url(ready, "manifest.mpd")).content == b"not xml"
    assert "MPD not captioned" in caplog.text
