"""Chunked encoding, in this process against real FFmpeg, PostgreSQL and storage: a long source
encoded in chunks gives what one run gives (rungs, segments, durations, frames), with decode
times continuous across every join and no concat pass; the content is watchable after its first
chunk; a chunk's failure fails the job with the reason."""

import threading
import time
from fractions import Fraction

import pytest
from django.db import connection, transaction

from apps.content.models import ContentStatus
from apps.content.selectors import content_playable_seconds
from apps.transcode.chunks import plan_chunks
from apps.transcode.cmaf import decode_times
from apps.transcode.models import ChunkKind, ChunkState, JobState, TranscodeChunk
from apps.transcode.mpd import read_tracks
from apps.transcode.packaging import read_media_playlist
from apps.transcode.services.chunking import _claim, chunk_run, chunks_advance
from tests.factories import ContentFactory
from tests.transcode.conftest import (
    count_frames,
    encode,
    output_dir,
    planned,
    store_source,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_plan_cuts_on_segment_boundaries_and_never_leaves_a_sliver():
    rate = Fraction(30000, 1001)
    chunks = plan_chunks(
        duration=130.2, frame_rate=rate, chunk_seconds=60, segment_seconds=4, storyboard_interval=5
    )
    # 130.2 s: 60 + 60 + 10.2 (a remainder of a segment or more is a chunk of its own)
    assert [c.start_frame for c in chunks] == [0, 1799, 3597]
    assert [c.frames for c in chunks] == [1799, 1798, None]
    assert chunks[1].start_seconds == pytest.approx(1799 * 1001 / 30000)
    assert [c.first_thumbnail for c in chunks] == [0, 13, 25]
    assert [c.thumbnails for c in chunks] == [13, 12, None]
    assert [c.poster for c in chunks] == [True, False, False]
    short_tail = plan_chunks(
        duration=123.9, frame_rate=Fraction(30), chunk_seconds=60, segment_seconds=4,
        storyboard_interval=5,
    )  # fmt: skip
    assert [c.start_frame for c in short_tail] == [0, 1800]  # 3.9 s joins the second
    with pytest.raises(ValueError, match="multiple of the segment"):
        plan_chunks(
            duration=300, frame_rate=Fraction(30), chunk_seconds=10, segment_seconds=4,
            storyboard_interval=5,
        )  # fmt: skip


def _timeline(folder, track: str) -> list[tuple[int, int]]:
    tracks = {t.id: t for t in read_tracks(folder / "manifest.mpd")}
    return [(s.start, s.duration) for s in tracks[track].segments]


@pytest.mark.usefixtures("chunked")
def test_a_chunked_encode_equals_one_run(chunked_clip, media_root, settings):
    content, job = encode(chunked_clip)
    assert job.state == JobState.SUCCEEDED, content.error
    chunks = list(TranscodeChunk.objects.filter(job=job).order_by("kind", "index"))
    assert [(c.kind, c.index) for c in chunks] == [
        (ChunkKind.AUDIO, 0),
        (ChunkKind.VIDEO, 0),
        (ChunkKind.VIDEO, 1),
        (ChunkKind.VIDEO, 2),
    ]
    assert all(c.state == ChunkState.SUCCEEDED and c.attempts == 1 for c in chunks)
    assert content.status == ContentStatus.READY
    assert content_playable_seconds(content) == content.duration
    chunked_dir = output_dir(media_root, content)

    settings.TRANSCODE_CHUNK_THRESHOLD_SECONDS = 0  # the same source in one run
    whole_content, whole_job = encode(chunked_clip)
    assert whole_job.state == JobState.SUCCEEDED
    assert not TranscodeChunk.objects.filter(job=whole_job).exists()
    whole_dir = output_dir(media_root, whole_content)

    assert [(r.name, r.width, r.height) for r in content.renditions.order_by("-height")] == [
        (r.name, r.width, r.height) for r in whole_content.renditions.order_by("-height")
    ]
    rungs = content.renditions.count()
    assert rungs >= 2
    frame = 1 / 30
    for track in map(str, range(rungs)):
        ours, theirs = _timeline(chunked_dir, track), _timeline(whole_dir, track)
        assert len(ours) == len(theirs), track
        scale = {t.id: t for t in read_tracks(chunked_dir / "manifest.mpd")}[track].timescale
        assert sum(d for _, d in ours) / scale == pytest.approx(
            sum(d for _, d in theirs) / scale, abs=frame
        )
        # Continuous: each segment starts where the one before ended, in the MPD and in the
        # segments' own decode times (tfdt), across the chunk joins at 8 s and 16 s.
        assert all(a[0] + a[1] == b[0] for a, b in zip(ours, ours[1:], strict=False))
        playlist = read_media_playlist(chunked_dir / f"media_{track}.m3u8")
        assert len(playlist.segments) == len(ours)
        tfdt = [decode_times(chunked_dir / s.uri)[0] for s in playlist.segments]
        assert tfdt == [start for start, _ in ours]
    assert count_frames(str(chunked_dir / "manifest.mpd")) == count_frames(
        str(whole_dir / "manifest.mpd")
    )
    assert count_frames(str(chunked_dir / "master.m3u8")) == count_frames(
        str(whole_dir / "master.m3u8")
    )
    master = (chunked_dir / "master.m3u8").read_text()
    assert master.count("#EXT-X-STREAM-INF") == rungs
    assert "DISCONTINUITY" not in master
    media = (chunked_dir / "media_0.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in media
    assert media.rstrip().endswith("#EXT-X-ENDLIST")
    assert "DISCONTINUITY" not in media
    assert 'type="static"' in (chunked_dir / "manifest.mpd").read_text()
    assert "UTCTiming" not in (chunked_dir / "manifest.mpd").read_text()  # static: no clock
    # The audio, encoded whole: as many segments, as long (its own run may cut a segment one
    # AAC frame away from where the ladder's muxer cuts it), and continuous.
    audio = str(rungs)
    ours, theirs = _timeline(chunked_dir, audio), _timeline(whole_dir, audio)
    assert len(ours) == len(theirs)
    assert sum(d for _, d in ours) == sum(d for _, d in theirs)
    assert all(a[0] + a[1] == b[0] for a, b in zip(ours, ours[1:], strict=False))
    for track in map(str, range(rungs + 1)):  # one init segment per track, as one run's
        init = f"init-stream{track}.m4s"
        assert (chunked_dir / init).read_bytes() == (whole_dir / init).read_bytes()
    cues = (chunked_dir / "storyboard.vtt").read_text().count(" --> ")
    assert cues == (whole_dir / "storyboard.vtt").read_text().count(" --> ") == 21
    assert (chunked_dir / "poster.jpg").stat().st_size > 0


@pytest.mark.usefixtures("chunked")
def test_the_first_chunk_makes_it_watchable_while_processing(chunked_clip, media_root, tmp_path):
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    assert len(chunks) == 4
    content.refresh_from_db()
    assert content.status == ContentStatus.PROCESSING
    assert content_playable_seconds(content) is None

    chunk_run(chunk_id=chunks[("video", 0)].pk)
    content.refresh_from_db()
    assert content_playable_seconds(content) is None  # the audio is not there yet
    chunk_run(chunk_id=chunks[("audio", 0)].pk)
    content.refresh_from_db()
    assert content.status == ContentStatus.PROCESSING
    assert content_playable_seconds(content) == pytest.approx(8.0)
    assert content.published_job_id == job.pk
    folder = media_root / job.output_prefix
    media = (folder / "media_0.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in media
    assert "#EXT-X-ENDLIST" not in media
    assert media.count("#EXTINF") == 2
    audio = (folder / f"media_{content.renditions.count()}.m3u8").read_text()
    assert audio.count("#EXTINF") == 2  # up to the video's end, not the whole track
    mpd = (folder / "manifest.mpd").read_text()
    assert 'type="dynamic"' in mpd
    # The server's clock for dash.js, which otherwise asks time.akamai.com, then gives up.
    assert '<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="' in mpd

    chunk_run(chunk_id=chunks[("video", 2)].pk)  # out of order: listed once 1 is done
    content.refresh_from_db()
    assert content_playable_seconds(content) == pytest.approx(8.0)
    chunk_run(chunk_id=chunks[("video", 1)].pk)
    content.refresh_from_db()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert content.status == ContentStatus.READY
    assert content_playable_seconds(content) == content.duration
    media = (folder / "media_0.m3u8").read_text()
    assert media.count("#EXTINF") == 6
    assert media.rstrip().endswith("#EXT-X-ENDLIST")
    chunks_advance(job_id=job.pk)  # a late call (a chunk task's) changes nothing
    assert (folder / "media_0.m3u8").read_text() == media


@pytest.mark.usefixtures("chunked")
def test_a_chunk_that_cannot_be_encoded_fails_the_job_and_what_was_watchable_goes(
    chunked_clip, media_root, tmp_path
):
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    chunk_run(chunk_id=chunks[("audio", 0)].pk)
    chunk_run(chunk_id=chunks[("video", 0)].pk)
    content.refresh_from_db()
    assert content_playable_seconds(content) == pytest.approx(8.0)
    # The source is damaged after the first chunk was encoded: the next chunk's FFmpeg fails.
    source = media_root / content.source_path
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    chunk_run(chunk_id=chunks[("video", 2)].pk)
    job.refresh_from_db()
    content.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "FFmpeg could not encode this video" in job.error
    assert content.status == ContentStatus.FAILED
    assert content.error == job.error
    assert content_playable_seconds(content) is None
    assert content.published_job_id is None
    assert not content.renditions.exists()
    chunk_run(chunk_id=chunks[("video", 1)].pk)  # its task arrives late: nothing to do
    assert TranscodeChunk.objects.get(pk=chunks[("video", 1)].pk).state == ChunkState.QUEUED


@pytest.mark.usefixtures("chunked")
def test_two_workers_claiming_one_chunk_at_the_same_moment_do_not_both_run_it(
    chunked_clip, media_root, tmp_path
):
    """The job's own task and the chunk's task claim the same queued chunk at once: one wins.
    (A claim filtering on the job's state through a join was compiled to ``id IN (SELECT … JOIN
    …)``, which PostgreSQL does not evaluate again after waiting for the other claim: both won,
    and on one host the second run deleted the first's work folder under its FFmpeg.)"""
    content = store_source(ContentFactory(), chunked_clip)
    _, chunks = planned(content, tmp_path)
    audio = chunks[("audio", 0)]
    claimed, release = threading.Event(), threading.Event()
    outcomes = {}

    def claim(name: str, *, hold: bool) -> None:
        try:
            with transaction.atomic():
                outcomes[name] = _claim(audio.pk, f"{name}-host:1", "")
                if hold:  # the first claim is made, not yet committed
                    claimed.set()
                    release.wait(30)
        finally:
            connection.close()

    first = threading.Thread(target=claim, args=("first",), kwargs={"hold": True})
    second = threading.Thread(target=claim, args=("second",), kwargs={"hold": False})
    first.start()
    assert claimed.wait(30)
    second.start()
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:  # until the second claim waits for the first's lock
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
    release.set()
    first.join(30)
    second.join(30)
    assert outcomes["first"] is not None
    assert outcomes["second"] is None
    chunk = TranscodeChunk.objects.get(pk=audio.pk)
    assert (chunk.state, chunk.worker, chunk.attempts) == (ChunkState.RUNNING, "first-host:1", 1)
