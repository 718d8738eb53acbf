"""A chunk's FFmpeg reads only its range of the source, over HTTP byte ranges (as from S3, with
a presigned URL), never the whole file; a whole job's FFmpeg reads it all once."""

import dataclasses
import subprocess

import pytest

from apps.content.storage import storage_put_file, storage_source_location
from apps.transcode import ffmpeg
from apps.transcode.chunks import plan_chunks
from apps.transcode.mpd import read_tracks
from apps.transcode.probe import probe
from apps.transcode.runner import encode_plan
from tests.support.media import make_video
from tests.support.range_server import counting_proxy, range_server

SECONDS, CHUNK = 60, 16  # chunks at 0, 16, 32 and 48 s
# On loopback the kernel reads ahead as far as its buffers grow (tens of megabytes here, the
# whole test file): bounded to what FFmpeg asks for, bytes sent are bytes FFmpeg read.
BOUNDED_READ_AHEAD = ["-recv_buffer_size", "65536"]


@pytest.fixture(scope="module")
def minute_clip(tmp_path_factory):
    """A minute with a keyframe every 2 s (as cameras write), its index (moov) at the end."""
    return make_video(
        tmp_path_factory.mktemp("ranges") / "minute.mp4",
        seconds=SECONDS,
        size="640x360",
        rate=30,
        extra=["-g", "60"],
    )


def run_reading(plan: ffmpeg.EncodePlan) -> None:
    (plan.output_dir / "storyboard").mkdir(parents=True)
    args = ffmpeg.build_command(plan, binary=ffmpeg.ffmpeg_binary())
    at = args.index("-i")
    args[at:at] = BOUNDED_READ_AHEAD
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def chunk_plans(source: str, info, tmp_path) -> tuple[ffmpeg.EncodePlan, ffmpeg.EncodePlan]:
    """(the second chunk's plan, 16 to 32 s; the whole job's) for ``source``."""
    plan = encode_plan(source, tmp_path / "whole", info)
    chunks = plan_chunks(
        duration=plan.duration,
        frame_rate=plan.frame_rate,
        chunk_seconds=CHUNK,
        segment_seconds=plan.segment_seconds,
        storyboard_interval=plan.storyboard.interval,
    )
    assert [chunk.start_seconds for chunk in chunks] == [0, 16, 32, 48]
    return dataclasses.replace(plan, span=chunks[1], output_dir=tmp_path / "chunk"), plan


def assert_read_its_range(read: int, ranges: list, *, size: int, folder) -> None:
    # The chunk (16 to 32 s, a quarter of the video) took its part, from the keyframe at or
    # before its start, plus the index and a little read-ahead; nowhere near the whole file.
    assert 0.25 * size < read < 0.45 * size, (read / size, ranges)
    starts = [int(r[6:].split("-")[0]) for r in ranges if r and r.startswith("bytes=")]
    assert any(start > 0.2 * size for start in starts), ranges  # it jumped to its range
    # And it encoded its range: four 4-second segments per rung.
    tracks = read_tracks(folder / ffmpeg.MANIFEST)
    assert tracks
    assert all(len(track.segments) == CHUNK // 4 for track in tracks)


def test_a_middle_chunk_reads_only_its_range_of_the_source(minute_clip, tmp_path):
    size = minute_clip.stat().st_size
    info = probe(str(minute_clip))
    with range_server(minute_clip) as server:
        signed = f"{server.url}?X-Amz-Expires=900&X-Amz-Signature=0123abcd"
        chunk, whole = chunk_plans(signed, info, tmp_path)
        server.reset()
        run_reading(chunk)
        chunk_read, chunk_ranges = server.bytes_sent, list(server.ranges)
        server.reset()
        run_reading(whole)
        whole_read = server.bytes_sent
    assert_read_its_range(chunk_read, chunk_ranges, size=size, folder=chunk.output_dir)
    assert whole_read >= size  # a whole job reads it all (its index twice)


def test_from_s3_a_chunk_reads_its_range_through_the_presigned_url(
    minute_clip, tmp_path, s3_storage, moto_server
):
    """The source stored on an S3 API (moto), located as a chunk locates it: ranged GETs."""
    key = "sources/ranges/minute.mp4"
    storage_put_file(str(minute_clip), key, content_type="video/mp4", cache_control="private")
    signed = storage_source_location(key, expires=900)
    assert signed.startswith(moto_server)
    assert "Signature=" in signed
    info = probe(str(minute_clip))
    with counting_proxy(moto_server) as proxy:
        chunk, _ = chunk_plans(proxy.url + signed.removeprefix(moto_server), info, tmp_path)
        run_reading(chunk)
        read, ranges = proxy.bytes_sent, list(proxy.ranges)
    assert_read_its_range(read, ranges, size=minute_clip.stat().st_size, folder=chunk.output_dir)
