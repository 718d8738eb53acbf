"""Real encodes of short generated clips through the whole service, on disk storage."""

import xml.etree.ElementTree as ET

import av
import m3u8
import pytest

from apps.content.models import ContentStatus
from apps.transcode.models import JobState
from tests.support.media import make_audio, make_variable_rate, make_video
from tests.transcode.conftest import count_frames, encode, first_frames, output_dir

pytestmark = pytest.mark.django_db

MPD = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "hd": make_video(folder / "hd.mp4", seconds=5, size="1280x720", rate=30),
        "small": make_video(folder / "small.mp4", seconds=4, size="320x240", rate=25),
    }


def test_720p_source_gives_720_480_360_in_hls_and_dash(clips, media_root):
    content, job = encode(clips["hd"])
    assert content.status == ContentStatus.READY, content.error
    assert job.state == JobState.SUCCEEDED
    folder = output_dir(media_root, content)

    master = m3u8.load(str(folder / "master.m3u8"))
    variants = [(p.stream_info.resolution, p.stream_info.codecs) for p in master.playlists]
    assert [resolution for resolution, _ in variants] == [(1280, 720), (864, 486), (640, 360)]
    # H.264 (the profile follows the preset: ultrafast uses only baseline tools) plus AAC-LC.
    assert all(
        codecs.startswith("avc1.") and codecs.endswith(",mp4a.40.2") for _, codecs in variants
    )
    for playlist in master.playlists:
        info = playlist.stream_info
        assert info.bandwidth >= info.average_bandwidth > 0
        assert info.frame_rate == pytest.approx(30.0)
        assert info.audio == "audio"
    assert [media.uri for media in master.media if media.type == "AUDIO"] == ["media_3.m3u8"]

    root = ET.parse(folder / "manifest.mpd").getroot()  # noqa: S314 - our own output
    video_reps = root.findall(".//mpd:AdaptationSet[@contentType='video']/mpd:Representation", MPD)
    assert [(int(r.get("width")), int(r.get("height"))) for r in video_reps] == [
        (1280, 720),
        (864, 486),
        (640, 360),
    ]
    assert len(root.findall(".//mpd:AdaptationSet[@contentType='audio']", MPD)) == 1

    for index in range(3):
        flags = first_frames(folder, f"media_{index}.m3u8")
        assert len(flags) == 2  # 5 s in 4 s segments
        assert all(flags), f"rung {index}: a segment does not start with a keyframe"

    expected = 5 * 30
    for index in range(3):
        video, _ = count_frames(str(folder / f"media_{index}.m3u8"))
        assert abs(video - expected) <= 1
    video, audio = count_frames(str(folder / "manifest.mpd"))
    assert abs(video - expected) <= 1
    assert audio > 200  # 5 s of AAC at 48 kHz is ~235 frames

    renditions = list(content.renditions.order_by("-height").values_list("name", "width", "height"))
    assert renditions == [("720p", 1280, 720), ("480p", 864, 486), ("360p", 640, 360)]
    assert content.poster == job.output_prefix + "poster.jpg"
    with av.open(str(folder / "poster.jpg")) as poster:
        frame = next(poster.decode(video=0))
        assert (frame.width, frame.height) == (1280, 720)
    vtt = (folder / "storyboard.vtt").read_text()
    assert vtt.count("#xywh=") == 5
    assert job.realtime_factor > 0
    assert set(job.stage_seconds) == {"probe", "encode", "package", "publish"}
    assert "-filter_complex" in job.command
    assert content.progress == 100


def test_odd_dimensions(tmp_path, media_root):
    odd = make_video(
        tmp_path / "odd.mp4", seconds=3, size="321x241", audio=False, pix_fmt="yuv444p"
    )
    content, _ = encode(odd)
    assert content.status == ContentStatus.READY, content.error
    # Below every rung: one rung of its own size, made even, never bigger.
    assert list(content.renditions.values_list("name", "width", "height")) == [("240p", 320, 240)]


def test_a_silent_source_gives_a_video_only_ladder(clips, tmp_path, media_root):
    silent = make_video(tmp_path / "silent.mp4", seconds=3, size="640x360", audio=False)
    content, _ = encode(silent)
    assert content.status == ContentStatus.READY, content.error
    folder = output_dir(media_root, content)
    master = (folder / "master.m3u8").read_text()
    assert "EXT-X-MEDIA" not in master
    assert "mp4a" not in master
    assert "AUDIO=" not in master
    root = ET.parse(folder / "manifest.mpd").getroot()  # noqa: S314
    assert not root.findall(".//mpd:AdaptationSet[@contentType='audio']", MPD)
    assert all(
        r.codecs.startswith("avc1") and "," not in r.codecs for r in content.renditions.all()
    )
    video, audio = count_frames(str(folder / "manifest.mpd"))
    assert (abs(video - 75) <= 1, audio) == (True, 0)


def test_10_bit_source_becomes_8_bit_420(tmp_path, media_root):
    ten = make_video(tmp_path / "ten.mp4", seconds=3, size="640x360", pix_fmt="yuv420p10le")
    content, job = encode(ten)
    assert content.status == ContentStatus.READY, content.error
    assert job.source_info["bit_depth"] == 10
    folder = output_dir(media_root, content)
    with av.open(str(folder / "media_0.m3u8")) as played:
        stream = played.streams.video[0]
        assert stream.codec_context.format.name == "yuv420p"
        assert "10" not in stream.codec_context.profile


def test_variable_frame_rate_becomes_constant(tmp_path, media_root):
    vfr = make_variable_rate(tmp_path / "vfr.mp4", seconds=4)
    content, job = encode(vfr)
    assert content.status == ContentStatus.READY, content.error
    assert job.source_info["variable_frame_rate"] is True
    folder = output_dir(media_root, content)
    with av.open(str(folder / "media_0.m3u8")) as played:
        stream = played.streams.video[0]
        times = sorted(
            float(p.pts * p.time_base) for p in played.demux(stream) if p.pts is not None
        )
    gaps = {round(b - a, 3) for a, b in zip(times, times[1:], strict=False)}
    # One constant gap, at the source's 30 fps peak (not its 23 fps average, which would
    # drop frames of the first two seconds).
    assert gaps == {round(1 / 30, 3)}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: _text_file(tmp), "not a video we can read"),
        (lambda tmp: make_audio(tmp / "tone.m4a"), "This is an audio file"),
        (lambda tmp: _truncated(tmp), "probably truncated"),
        (lambda tmp: _corrupt(tmp), "could not"),
    ],
    ids=["text", "audio-only", "truncated", "corrupt"],
)
def test_bad_input_fails_with_a_message_and_publishes_nothing(tmp_path, media_root, make, message):
    content, job = encode(make(tmp_path))
    assert content.status == ContentStatus.FAILED
    assert message in content.error
    assert content.published_job is None
    assert content.renditions.count() == 0
    assert content.poster == ""
    if job is not None:
        assert job.state == JobState.FAILED
        assert not (media_root / job.output_prefix).exists()


def _text_file(folder):
    path = folder / "notes.mp4"
    path.write_text("meeting notes\n" * 50)
    return path


def _truncated(folder):
    whole = make_video(
        folder / "whole.mp4", seconds=4, size="320x240", extra=["-movflags", "+faststart"]
    )
    path = folder / "truncated.mp4"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    return path


def _corrupt(folder):
    whole = make_video(
        folder / "whole2.mp4",
        seconds=4,
        size="320x240",
        audio=False,
        extra=["-movflags", "+faststart"],
    )
    data = bytearray(whole.read_bytes())
    start = len(data) // 4
    data[start:] = bytes((b * 7 + 13) % 256 for b in data[start:])  # scramble the frames
    path = folder / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


def test_a_playlist_cannot_make_the_encoder_read_other_files(clips, media_root, tmp_path):
    """An uploaded HLS playlist naming another content's segments must not be encoded: it
    would publish someone else's (maybe gated) video under this content."""
    victim, _ = encode(clips["small"])
    folder = output_dir(media_root, victim)
    playlist = tmp_path / "holiday.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n"
        f'#EXT-X-MAP:URI="{folder / "init-stream0.m4s"}"\n'
        f"#EXTINF:4.0,\n{folder / 'chunk-stream0-00001.m4s'}\n#EXT-X-ENDLIST\n"
    )
    content, job = encode(playlist)
    assert content.status == ContentStatus.FAILED
    assert "not a video" in content.error
    assert content.renditions.count() == 0


def test_a_clip_shorter_than_a_storyboard_interval(tmp_path, media_root, settings):
    settings.TRANSCODE_STORYBOARD = {"interval": 5, "width": 160, "columns": 10, "rows": 10}
    short = make_video(tmp_path / "short.mp4", seconds=1.2, size="320x240")
    content, _ = encode(short)
    assert content.status == ContentStatus.READY, content.error
    vtt = (output_dir(media_root, content) / "storyboard.vtt").read_text()
    assert "00:00:00.000 --> 00:00:01.200" in vtt


def test_over_8k_is_refused_with_a_message(tmp_path, media_root):
    wide = make_video(tmp_path / "wide.mp4", seconds=1, size="7696x16", audio=False)
    content, job = encode(wide)
    assert content.status == ContentStatus.FAILED
    assert "up to 8K" in content.error
    assert job.command == ""  # refused before any encoding


def test_dash_manifest_carries_measured_bandwidths(clips, media_root):
    content, _ = encode(clips["hd"])
    folder = output_dir(media_root, content)
    root = ET.parse(folder / "manifest.mpd").getroot()  # noqa: S314
    reps = root.findall(".//mpd:AdaptationSet[@contentType='video']/mpd:Representation", MPD)
    by_name = {r.name: r.bitrate for r in content.renditions.all()}
    assert [int(rep.get("bandwidth")) for rep in reps] == [
        by_name["720p"],
        by_name["480p"],
        by_name["360p"],
    ]
    assert all(
        "bitstreamSwitching" not in a.attrib for a in root.iterfind(".//mpd:AdaptationSet", MPD)
    )
