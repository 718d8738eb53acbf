"""The ladder as FFmpeg really encodes it (issue 14): rungs never richer than the source,
portrait by its short side, square pixels, and a variable-rate source's peak kept. Tiny
generated clips through the whole service; outputs read back with PyAV."""

from pathlib import Path

import av
import pytest
from django.conf import settings

from apps.content.models import ContentStatus
from tests.support.media import make_rate_burst, make_rotated, make_video
from tests.transcode.conftest import encode, output_dir

pytestmark = pytest.mark.django_db

# The default ladder's two lowest rungs (360p, 240p), as configured for production.
LOW_RUNGS = [entry for entry in settings.TRANSCODE_LADDER if entry["height"] <= 360]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ladder-clips")
    coded = make_video(folder / "coded.mp4", seconds=3, size="640x360", audio=False)
    return {
        # 360p at ~100 kb/s: the configured 360p rung alone allows 856 kb/s.
        "starved": make_video(
            folder / "starved.mp4",
            seconds=8,
            size="640x360",
            audio=False,
            extra=["-b:v", "100k", "-maxrate", "100k", "-bufsize", "200k"],
        ),
        "phone": make_rotated(folder / "phone.mp4", coded, 90),
        "burst": make_rate_burst(folder / "burst.mp4"),
    }


def rungs(folder: Path) -> list[dict]:
    """Each video rung as published: size, pixel aspect, frame times, packet and file bytes."""
    found = []
    for playlist in sorted(folder.glob("media_*.m3u8")):
        with av.open(str(playlist)) as container:
            if not container.streams.video:
                continue
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
            index = playlist.stem.split("_")[1]
            found.append(
                {
                    "width": stream.codec_context.width,
                    "height": stream.codec_context.height,
                    "sar": stream.codec_context.sample_aspect_ratio,
                    "times": sorted(float(p.pts * p.time_base) for p in packets),
                    "packet_bytes": sum(p.size for p in packets),
                    "file_bytes": sum(
                        f.stat().st_size for f in folder.glob(f"*-stream{index}[.-]*m4s")
                    ),
                }
            )
    return found


def video_rate(path: Path) -> tuple[float, float]:
    """(video bits per second, seconds) of a file, from its packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size and p.pts is not None]
        times = sorted(float(p.pts * p.time_base) for p in packets)
        seconds = times[-1] - times[0] + (times[1] - times[0])
        return sum(p.size for p in packets) * 8 / seconds, seconds


def assert_square_and_even(published: list[dict]) -> None:
    for rung in published:
        assert rung["sar"] in (None, 1), rung  # PyAV: None or 0/1 means unspecified (square)
        assert rung["width"] % 2 == 0, rung
        assert rung["height"] % 2 == 0, rung


def test_a_low_bitrate_source_gets_no_rung_richer_than_itself(clips, media_root):
    """Issue 14: a 0.6 Mb/s 1080p source made a 1080p rung 6.9x its size. Here a 100 kb/s
    360p source, with the configured 360p/240p rungs (856 and 428 kb/s caps)."""
    settings.TRANSCODE_LADDER = LOW_RUNGS
    content, _ = encode(clips["starved"])
    assert content.status == ContentStatus.READY, content.error
    published = rungs(output_dir(media_root, content))
    source_rate, seconds = video_rate(clips["starved"])
    for rung in published:
        assert rung["packet_bytes"] * 8 / seconds <= source_rate, (rung["width"], source_rate)
    ladder_bytes = sum(rung["file_bytes"] for rung in published)
    assert ladder_bytes <= 1.5 * clips["starved"].stat().st_size
    assert_square_and_even(published)
    assert [(r["width"], r["height"]) for r in published] == [(640, 360), (416, 234)]


def test_portrait_with_a_rotation_flag_is_chosen_by_its_short_side(clips, media_root):
    """A phone video stored 640x360 with 'rotate 90' is 360x640 portrait: 360p, top rung
    360x640 (not 202x360, as rungs chosen by height made it)."""
    content, job = encode(clips["phone"])
    assert content.status == ContentStatus.READY, content.error
    assert job.source_info["rotation"] in (90, 270)
    assert (content.width, content.height) == (360, 640)
    folder = output_dir(media_root, content)
    published = rungs(folder)
    assert [(r["width"], r["height"]) for r in published] == [(360, 640)]
    with av.open(str(folder / "media_0.m3u8")) as played:
        assert not next(played.decode(video=0)).rotation  # turned upright, not flagged
    assert list(content.renditions.values_list("name", "width", "height")) == [("360p", 360, 640)]
    assert_square_and_even(published)


def test_a_variable_rate_source_keeps_its_peak_rate(clips, media_root):
    """20 fps with a second at 60 fps: the output runs at a constant 60 fps (the average,
    30, would drop two of every three frames of the fast second)."""
    content, job = encode(clips["burst"])
    assert content.status == ContentStatus.READY, content.error
    assert job.source_info["variable_frame_rate"] is True
    (top,) = rungs(output_dir(media_root, content))
    gaps = {round(b - a, 4) for a, b in zip(top["times"], top["times"][1:], strict=False)}
    assert gaps == {round(1 / 60, 4)}
    # Every frame of the 4 s at 1/60 s (the last source frame, at 3.95 s, lasts 1/20 s).
    assert len(top["times"]) >= 4 * 60 - 3
    assert_square_and_even([top])
