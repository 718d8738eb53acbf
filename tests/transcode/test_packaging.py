"""Packaging on hand-made folders: playlist rewriting, the master and the storyboard track."""

from fractions import Fraction

from apps.transcode.ffmpeg import Storyboard
from apps.transcode.packaging import (
    PackagedRendition,
    cache_control_of,
    content_type_of,
    measure,
    read_media_playlist,
    write_master,
    write_storyboard_vtt,
    write_vod_playlist,
)

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-MAP:URI="init-stream0.m4s"
#EXTINF:4.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:50:21.000+0000
chunk-stream0-00001.m4s
#EXTINF:2.500000,
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:50:25.000+0000
chunk-stream0-00002.m4s
#EXT-X-ENDLIST
"""


def test_media_playlist_becomes_a_vod_playlist(tmp_path):
    (tmp_path / "media_0.m3u8").write_text(FFMPEG_PLAYLIST)
    playlist = read_media_playlist(tmp_path / "media_0.m3u8")
    assert playlist.init == "init-stream0.m4s"
    assert [(s.uri, s.duration) for s in playlist.segments] == [
        ("chunk-stream0-00001.m4s", 4.0),
        ("chunk-stream0-00002.m4s", 2.5),
    ]
    write_vod_playlist(tmp_path / "media_0.m3u8", playlist)
    text = (tmp_path / "media_0.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert "#EXT-X-VERSION:7" in text
    assert "PROGRAM-DATE-TIME" not in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")


def test_bandwidth_is_measured_from_segment_sizes(tmp_path):
    (tmp_path / "media_0.m3u8").write_text(FFMPEG_PLAYLIST)
    (tmp_path / "chunk-stream0-00001.m4s").write_bytes(b"x" * 1_000_000)  # 2 Mbit/s
    (tmp_path / "chunk-stream0-00002.m4s").write_bytes(b"x" * 1_000_000)  # 3.2 Mbit/s
    peak, average = measure(tmp_path, read_media_playlist(tmp_path / "media_0.m3u8"))
    assert peak == 3_200_000
    assert average == 2_461_539  # ceil(16 Mbit / 6.5 s)


def rendition(name, width, height, peak, average):
    return PackagedRendition(
        name, width, height, peak, average, "avc1.64001f,mp4a.40.2", f"media_{name}.m3u8"
    )


def test_master_includes_audio_in_bandwidth(tmp_path):
    write_master(
        tmp_path,
        renditions=[rendition("720p", 1280, 720, 3_000_000, 2_500_000)],
        frame_rate=Fraction(30000, 1001),
        audio=("media_1.m3u8", 140_000, 130_000, 2),
    )
    lines = (tmp_path / "master.m3u8").read_text().splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[3].startswith('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"')
    assert 'URI="media_1.m3u8"' in lines[3]
    assert lines[4] == (
        "#EXT-X-STREAM-INF:BANDWIDTH=3140000,AVERAGE-BANDWIDTH=2630000,RESOLUTION=1280x720,"
        'CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=29.970,AUDIO="audio"'
    )
    assert lines[5] == "media_720p.m3u8"


def test_master_without_audio_has_no_audio_group(tmp_path):
    write_master(
        tmp_path,
        renditions=[rendition("360p", 640, 360, 900_000, 800_000)],
        frame_rate=Fraction(25),
        audio=None,
    )
    text = (tmp_path / "master.m3u8").read_text()
    assert "EXT-X-MEDIA" not in text
    assert "AUDIO=" not in text
    assert "BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000" in text


def test_storyboard_cues_walk_the_sprite_grid(tmp_path):
    (tmp_path / "storyboard").mkdir()
    for sheet in ("sprite-001.jpg", "sprite-002.jpg"):
        (tmp_path / "storyboard" / sheet).write_bytes(b"jpeg")
    board = Storyboard(interval=2, width=160, height=90, columns=2, rows=2)
    sheets = write_storyboard_vtt(tmp_path, duration=9.5, storyboard=board)
    assert sheets == ["storyboard/sprite-001.jpg", "storyboard/sprite-002.jpg"]
    blocks = (tmp_path / "storyboard.vtt").read_text().strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = [block.splitlines() for block in blocks[1:]]
    assert len(cues) == 5  # 0, 2, 4, 6, 8 s
    assert cues[0] == ["00:00:00.000 --> 00:00:02.000", "storyboard/sprite-001.jpg#xywh=0,0,160,90"]
    assert cues[3] == [
        "00:00:06.000 --> 00:00:08.000",
        "storyboard/sprite-001.jpg#xywh=160,90,160,90",
    ]
    assert cues[4] == ["00:00:08.000 --> 00:00:09.500", "storyboard/sprite-002.jpg#xywh=0,0,160,90"]


def test_headers_for_outputs():
    assert content_type_of("master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_of("manifest.mpd") == "application/dash+xml"
    assert content_type_of("chunk-stream0-00001.m4s") == "video/iso.segment"
    assert content_type_of("storyboard.vtt") == "text/vtt"
    assert cache_control_of("chunk-stream0-00001.m4s").endswith("immutable")
    assert cache_control_of("storyboard/sprite-001.jpg").endswith("immutable")
    assert cache_control_of("master.m3u8") == "private, max-age=60"
