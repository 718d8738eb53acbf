"""Chunked encoding on a real Celery worker (prefork, two pool processes): a pool process
SIGKILLed mid-chunk costs that chunk, not the job, and the chunk is taken back at once (the
worker requeues the lost task; a chunk whose worker process is dead here is claimed again),
not after TRANSCODE_STALE_AFTER_SECONDS."""

import os
import signal
import time

import pytest

from apps.content.models import Content, ContentStatus
from apps.transcode.models import ChunkKind, ChunkState, JobState, TranscodeChunk, TranscodeJob
from apps.transcode.packaging import read_media_playlist
from apps.transcode.services.chunking import CHUNK_STOPPED
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.support.processes import alive, celery_worker, parent_of, processes_with
from tests.transcode.conftest import count_frames, store_source
from tests.transcode.test_live import wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

SECONDS, CHUNK, RATE = 32, 8, 30  # four video chunks of two 4-second segments each
STALE_AFTER = 60  # the worker's TRANSCODE_STALE_AFTER_SECONDS: recovery must not wait for it


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_video(
        tmp_path_factory.mktemp("chunked-live") / "long.mp4",
        seconds=SECONDS,
        size="854x480",
        rate=RATE,
    )


def chunked_worker(tmp_path, logs_dir):
    env = worker_env(tmp_path) | {
        "TRANSCODE_CHUNK_THRESHOLD_SECONDS": "10",
        "TRANSCODE_CHUNK_SECONDS": str(CHUNK),
        "TRANSCODE_STALE_AFTER_SECONDS": str(STALE_AFTER),
    }
    return celery_worker(
        env, logs_dir / "worker.log", queues="transcode,default", pool="prefork", concurrency=2
    )


def running_video_chunk(
    job: TranscodeJob, *, in_job_task: bool
) -> tuple[TranscodeChunk, int] | None:
    """A video chunk whose FFmpeg runs, in the job's own task or in a chunk task: (the chunk,
    FFmpeg's pid), or None; the job must still be running (else: why it ended)."""
    job.refresh_from_db()
    chunks = TranscodeChunk.objects.filter(job=job).values_list("kind", "index", "state", "worker")
    assert job.state == JobState.RUNNING, (job.state, job.error, job.stderr_tail, list(chunks))
    for chunk in TranscodeChunk.objects.filter(
        job=job, kind=ChunkKind.VIDEO, state=ChunkState.RUNNING
    ):
        if (chunk.worker == job.worker) != in_job_task:
            continue
        pids = processes_with(f"{job.id}/video-{chunk.index}/")
        if pids:
            return chunk, pids[0]
    return None


@pytest.mark.parametrize("in_job_task", [True, False], ids=["job-task", "chunk-task"])
def test_a_worker_killed_mid_chunk_costs_only_that_chunk(
    tmp_path, logs_dir, long_clip, media_root, in_job_task
):
    with chunked_worker(tmp_path, logs_dir):
        content = store_source(ContentFactory(), long_clip)
        job = wait_for(
            lambda: (
                TranscodeJob.objects.filter(content=content, state=JobState.RUNNING)
                .exclude(chunk_plan={})
                .first()
            ),
            60,
            "the job to be cut into chunks",
        )
        killed, ffmpeg_pid = wait_for(
            lambda: running_video_chunk(job, in_job_task=in_job_task),
            60,
            "a video chunk's FFmpeg",
        )
        pool_process = parent_of(ffmpeg_pid)
        assert killed.worker.endswith(f":{pool_process}")
        time.sleep(0.3)  # into the encode
        os.kill(pool_process, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: not alive(ffmpeg_pid), 10, "FFmpeg to die with its pool process")
        done = wait_for(
            lambda: Content.objects.filter(
                pk=content.pk, status__in=(ContentStatus.READY, ContentStatus.FAILED)
            ).first(),
            STALE_AFTER - 15,
            "the content to be ready (before any heartbeat could go stale)",
        )
        recovered = time.monotonic() - killed_at
    assert done.status == ContentStatus.READY, done.error
    jobs = list(TranscodeJob.objects.filter(content=content))
    assert [(j.attempt, j.state) for j in jobs] == [(1, JobState.SUCCEEDED)]
    chunks = {(c.kind, c.index): c for c in TranscodeChunk.objects.filter(job=job)}
    assert len(chunks) == 1 + SECONDS // CHUNK
    again = chunks.pop((killed.kind, killed.index))
    assert (again.state, again.attempts, again.interruption) == (
        ChunkState.SUCCEEDED,
        2,
        CHUNK_STOPPED,
    )
    # The others were encoded once: their outputs and records were kept.
    assert {key: (c.state, c.attempts) for key, c in chunks.items()} == dict.fromkeys(
        chunks, (ChunkState.SUCCEEDED, 1)
    )
    folder = media_root / jobs[0].output_prefix
    video, audio = count_frames(str(folder / "master.m3u8"))
    assert video == SECONDS * RATE
    assert audio == count_frames(str(long_clip))[1]
    rungs = done.renditions.count()
    for track in range(rungs + 1):  # every rung and the audio: 4-second segments, none missing
        playlist = read_media_playlist(folder / f"media_{track}.m3u8")
        assert len(playlist.segments) == SECONDS // 4
    assert "signal 9" in (logs_dir / "worker.log").read_text()
    print(f"recovered and finished {recovered:.1f} s after the kill")
