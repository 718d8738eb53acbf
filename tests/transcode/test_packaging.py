"""Packaging on hand-made folders: playlist rewriting, the master, the storyboard track, the
MPD timeline with its tail settled, and CMAF segment boxes."""

import struct
from fractions import Fraction

import pytest

from apps.transcode.cmaf import BoxError, boxes, brands, finish_segment
from apps.transcode.ffmpeg import Storyboard
from apps.transcode.mpd import TimedSegment, Track, read_tracks, settle_tails, write_mpd
from apps.transcode.packaging import (
    MediaPlaylist,
    PackagedRendition,
    Segment,
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
    assert cache_control_of("master.m3u8") == "private, no-cache"


# --- the tail, the timeline and the CMAF boxes ---------------------------------------------


def track(track_id, kind, timescale, durations, start=0):
    segments, time = [], start
    for number, duration in enumerate(durations, 1):
        segments.append(TimedSegment(f"chunk-stream{track_id}-{number:05d}.m4s", time, duration))
        time += duration
    return Track(track_id, kind, "", timescale, f"init-stream{track_id}.m4s", tuple(segments))


def test_an_audio_sliver_is_merged_into_the_segment_before():
    # 8 s at 25 fps in 4 s segments; the AAC priming pushes one 1024-sample frame past 8 s.
    video = track("0", "video", 12800, [51200, 51200])
    audio = track("1", "audio", 48000, [191488, 191488, 1024])
    (settled_video, merged_video), (settled_audio, merged_audio) = settle_tails(
        [video, audio], reference=video, min_tail=0.5
    )
    assert (settled_video, merged_video) == (video, ())
    assert [s.duration for s in settled_audio.segments] == [191488, 192512]
    assert merged_audio == ("chunk-stream1-00003.m4s",)


def test_a_video_tail_takes_every_track_with_it():
    # One frame past the boundary: 40 ms of video, 61 ms of audio, merged in both.
    video = track("0", "video", 12800, [51200, 51200, 512])
    low = track("1", "video", 12800, [51200, 51200, 512])
    audio = track("2", "audio", 48000, [191488, 191488, 2944])
    settled = settle_tails([video, low, audio], reference=video, min_tail=0.5)
    assert [[s.duration for s in t.segments] for t, _ in settled] == [
        [51200, 51712],
        [51200, 51712],
        [191488, 194432],
    ]
    assert [merged for _, merged in settled] == [
        ("chunk-stream0-00003.m4s",),
        ("chunk-stream1-00003.m4s",),
        ("chunk-stream2-00003.m4s",),
    ]


def test_a_short_clip_and_a_long_tail_keep_their_segments():
    single = track("0", "video", 1000, [300])
    assert settle_tails([single], reference=single, min_tail=0.5) == [(single, ())]
    odd = track("0", "video", 1000, [4000, 1300])
    assert settle_tails([odd], reference=odd, min_tail=0.5) == [(odd, ())]


FFMPEG_MPD = """<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" maxSegmentDuration="PT4.0S">
  <Period id="0" start="PT0.0S">
    <AdaptationSet id="0" contentType="audio" bitstreamSwitching="true">
      <Representation id="1" mimeType="audio/mp4" codecs="mp4a.40.2" bandwidth="128000">
        <SegmentTemplate timescale="48000" initialization="init-stream$RepresentationID$.m4s"
            media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1">
          <SegmentTimeline><S t="0" d="191488" r="1" /><S d="1024" /></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""


def test_the_mpd_timeline_is_read_and_rewritten_with_real_durations(tmp_path):
    (tmp_path / "manifest.mpd").write_text(FFMPEG_MPD)
    (audio,) = read_tracks(tmp_path / "manifest.mpd")
    assert (audio.id, audio.content_type, audio.codecs) == ("1", "audio", "mp4a.40.2")
    assert audio.init == "init-stream1.m4s"
    assert [(s.uri, s.start, s.duration) for s in audio.segments] == [
        ("chunk-stream1-00001.m4s", 0, 191488),
        ("chunk-stream1-00002.m4s", 191488, 191488),
        ("chunk-stream1-00003.m4s", 382976, 1024),
    ]
    ((settled, _),) = settle_tails([audio], reference=audio, min_tail=0.5)
    write_mpd(tmp_path / "manifest.mpd", [settled], bandwidths={"1": 130_001})
    text = (tmp_path / "manifest.mpd").read_text()
    assert '<S t="0" d="191488" /><S d="192512" />' in text.replace("\n", "").replace("  ", "")
    assert 'maxSegmentDuration="PT4.011S"' in text  # 192512 / 48000 = 4.01067, rounded up
    assert 'bandwidth="130001"' in text
    assert "bitstreamSwitching" not in text
    (again,) = read_tracks(tmp_path / "manifest.mpd")
    assert again.segments == settled.segments


def test_target_duration_is_the_longest_segment_rounded(tmp_path):
    for durations, target in (([4.010667, 3.989333], 4), ([4.0, 4.6], 5), ([0.4], 1)):
        playlist = MediaPlaylist(
            "media_0.m3u8", "init.m4s", [Segment(f"s{i}.m4s", d) for i, d in enumerate(durations)]
        )
        write_vod_playlist(tmp_path / "media_0.m3u8", playlist)
        assert f"#EXT-X-TARGETDURATION:{target}\n" in (tmp_path / "media_0.m3u8").read_text()


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_segments_get_cmaf_brands_and_a_tail_is_appended(tmp_path):
    dash_styp = box(b"styp", b"msdh\0\0\0\0msdhmsix")
    first = [box(b"moof", b"A" * 20), box(b"mdat", b"a" * 100)]
    tail = [box(b"moof", b"B" * 20), box(b"mdat", b"b" * 3)]
    (tmp_path / "one.m4s").write_bytes(dash_styp + box(b"sidx", b"\0" * 44) + b"".join(first))
    (tmp_path / "two.m4s").write_bytes(dash_styp + box(b"sidx", b"\0" * 44) + b"".join(tail))
    (tmp_path / "alone.m4s").write_bytes(dash_styp + b"".join(first))

    finish_segment(tmp_path / "one.m4s", tails=(tmp_path / "two.m4s",))
    finish_segment(tmp_path / "alone.m4s")

    assert not (tmp_path / "two.m4s").exists()
    merged = (tmp_path / "one.m4s").read_bytes()
    assert merged == box(b"styp", b"cmfs\0\0\0\0cmfsmsdh") + b"".join(first + tail)
    assert brands(tmp_path / "one.m4s") == ["cmfs", "cmfs", "msdh"]  # two fragments: no cmff
    assert brands(tmp_path / "alone.m4s") == ["cmfs", "cmfs", "msdh", "cmff"]
    assert [kind for kind, _, _ in boxes(tmp_path / "alone.m4s")] == [b"styp", b"moof", b"mdat"]


def test_a_truncated_segment_is_refused(tmp_path):
    (tmp_path / "cut.m4s").write_bytes(box(b"styp", b"msdh\0\0\0\0") + box(b"moof", b"x" * 20)[:12])
    with pytest.raises(BoxError, match="cut.m4s"):
        finish_segment(tmp_path / "cut.m4s")
