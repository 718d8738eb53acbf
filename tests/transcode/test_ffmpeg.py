"""The FFmpeg boundary without running FFmpeg: command lines and recorded progress output."""

from fractions import Fraction
from pathlib import Path

import pytest

from apps.transcode.ffmpeg import (
    EncodeFailed,
    EncodePlan,
    RunResult,
    Storyboard,
    build_command,
    parse_progress,
    progress_percent,
)
from apps.transcode.ladder import PlannedRung
from apps.transcode.probe import VIDEO_DEMUXERS

RECORDED = """frame=12
fps=0.00
stream_0_0_q=28.0
bitrate=N/A
total_size=1024
out_time_us=400000
out_time_ms=400000
out_time=00:00:00.400000
dup_frames=0
drop_frames=0
speed=0.8x
progress=continue
frame=150
fps=60.00
out_time_us=5000000
out_time_ms=5000000
out_time=00:00:05.000000
speed=2.0x
progress=continue
frame=300
out_time_us=N/A
progress=end
"""


def plan(**overrides) -> EncodePlan:
    values = {
        "source": "/src/in.mov",
        "output_dir": Path("/work/job"),
        "rungs": [
            PlannedRung("720p", 1280, 720, 3_000_000, 4_200_000, 23),
            PlannedRung("360p", 640, 360, 856_000, 1_200_000, 23),
        ],
        "frame_rate": Fraction(30000, 1001),
        "duration": 10.0,
        "has_audio": True,
        "preset": "veryfast",
        "segment_seconds": 4,
        "gop_seconds": 2,
        "audio_bitrate": 128_000,
        "audio_sample_rate": 48_000,
        "audio_channels": 2,
        "poster_at": 1.0,
        "storyboard": Storyboard(interval=5, width=160, height=90, columns=10, rows=10),
    }
    return EncodePlan(**{**values, **overrides})


def test_progress_reports_are_grouped():
    reports = list(parse_progress(RECORDED.splitlines()))
    assert [r["progress"] for r in reports] == ["continue", "continue", "end"]
    assert reports[1]["speed"] == "2.0x"
    assert [progress_percent(r, 10.0) for r in reports] == [4.0, 50.0, 100.0]


def test_progress_without_a_time_says_nothing():
    assert progress_percent({"progress": "continue", "out_time_us": "N/A"}, 10) is None
    assert progress_percent({"progress": "continue"}, 10) is None
    # Never 100 before FFmpeg says it ended.
    assert progress_percent({"progress": "continue", "out_time_us": "10000000"}, 10) == 99.9


def test_one_process_decodes_once_and_aligns_keyframes():
    args = build_command(plan(), binary="ffmpeg")
    line = " ".join(args)
    assert args.count("-i") == 1
    graph = args[args.index("-filter_complex") + 1]
    assert "split=4" in graph  # two rungs, the poster, the storyboard
    for part in ("fps=fps=30000/1001", "format=yuv420p", "scale=1280:720", "scale=640:360"):
        assert part in graph, part
    # Square pixels on every rung; nothing bends the sample aspect.
    assert graph.count("setsar=1") == 3  # two rungs and the poster
    assert "setdar" not in graph
    assert "tile=10x10" in graph
    for flag in (
        "-g 60",
        "-keyint_min 60",
        "-sc_threshold 0",
        "-flags +cgop",
        "-f dash",
        "-seg_duration 4",
        "-use_timeline 1",
        "-format_options movflags=+cmaf",
        "-c:a aac",
        "-ar 48000",
        "-ac 2",
        "-crf:v:0 23",
        "-maxrate:v:0 3000000",
        "-maxrate:v:1 856000",
        "-bufsize:v:1 1200000",
        "-progress pipe:1",
    ):
        assert flag in line, flag
    assert "id=0,streams=v id=1,streams=a" in args
    assert args[-1] == "-y"


def test_a_silent_source_gets_a_video_only_ladder():
    args = build_command(plan(has_audio=False), binary="ffmpeg")
    assert "id=0,streams=v" in args
    assert "0:a:0" not in args
    assert "-c:a" not in args


@pytest.mark.parametrize(
    ("source", "protocols"),
    [
        ("/src/in.mov", "file"),
        ("https://s3.example/bucket/in.mov?X-Amz-Signature=abc", "http,https,tcp,tls"),
    ],
)
def test_the_input_is_confined_to_video_demuxers_and_its_own_protocol(source, protocols):
    args = build_command(plan(source=source, input_format="mov"), binary="ffmpeg")
    before_input = args[: args.index("-i")]
    assert args[args.index("-i") + 1] == source
    options = dict(zip(before_input[1::2], before_input[2::2], strict=True))
    assert options["-f"] == "mov"
    assert options["-protocol_whitelist"] == protocols
    assert set(options["-format_whitelist"].split(",")) == VIDEO_DEMUXERS
    assert not {"hls", "dash", "concat", "image2", "sdp"} & VIDEO_DEMUXERS


def test_encode_failed_explains_with_ffmpegs_own_words():
    tail = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'in.mp4':\n"
        "[h264 @ 0x1] Invalid NAL unit size (1234 > 99).\n"
        "[h264 @ 0x1] error while decoding MB 3 5\n"
        "Conversion failed!\n"
    )
    error = EncodeFailed(RunResult(exit_code=1, stderr_tail=tail))
    # FFmpeg's own words, without its internals (the "[h264 @ 0x1]" context).
    assert str(error).startswith("FFmpeg could not encode this video: error while decoding MB 3 5.")
    assert str(error).endswith("use a format we cannot decode.")


@pytest.mark.parametrize("tail", ["", "\n\n"])
def test_encode_failed_without_a_log(tail):
    assert str(EncodeFailed(RunResult(exit_code=1, stderr_tail=tail))).startswith(
        "FFmpeg could not encode this video."
    )
