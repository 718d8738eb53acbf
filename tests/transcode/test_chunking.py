"""Chunked jobs' rules around the encode (apps/transcode/services/chunking.py), in this process:
the reaper and the claim (a silent chunk goes back to the queue, a chunk that keeps dying fails
its job and says where, a task delivered twice runs once, a chunk of an ended job is left alone),
cancellation, the admin and /metrics, and progress over all the chunks."""

import asyncio
import json
import os
import signal
import socket
import threading
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import F
from django.utils import timezone
from moto.server import ThreadedMotoServer

from apps.content.models import ContentStatus
from apps.content.progress import overall_percent
from apps.content.realtime import content_group
from apps.content.services import content_delete
from apps.content.storage import StorageUnavailable
from apps.transcode.models import ChunkKind, ChunkState, JobState, TranscodeChunk, TranscodeJob
from apps.transcode.runner import STAGE_SPAN
from apps.transcode.services import transcode_reap
from apps.transcode.services.chunking import (
    CHUNK_SILENT,
    CHUNK_STOPPED,
    INCOMPLETE,
    RESEND_AFTER,
    ChunkRun,
    chunk_run,
    chunks_percent,
)
from apps.transcode.tasks import transcode_chunk, transcode_job
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.support.processes import alive, processes_with
from tests.transcode.conftest import planned, store_source
from tests.transcode.test_live import wait_for
from tests.transcode.test_services import stale_running

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("chunking") / "short.mp4", seconds=2)


DEAD_HERE = f"{socket.gethostname()}:999999"  # this host, a pid that is not running
ALIVE_HERE = f"{socket.gethostname()}:{os.getpid()}"


def chunked_job(*, heartbeat_ago: float = 0, worker: str = "job-host:1") -> TranscodeJob:
    """A running chunked job (rows only: nothing to encode) whose task runs on ``worker``."""
    content = ContentFactory(status=ContentStatus.PROCESSING)
    now = timezone.now()
    job = TranscodeJob.objects.create(
        content=content,
        attempt=1,
        state=JobState.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now - timedelta(seconds=heartbeat_ago),
        chunk_plan={"duration": 200.0},
        output_prefix=f"renditions/{content.id}/x/",
    )
    return job


def chunk_of(
    job: TranscodeJob,
    index: int,
    *,
    kind: str = ChunkKind.VIDEO,
    state: str = ChunkState.RUNNING,
    worker: str = "chunk-host:2",
    heartbeat_ago: float = 0,
    attempts: int = 1,
    progress: int = 0,
) -> TranscodeChunk:
    now = timezone.now()
    ran = state != ChunkState.QUEUED
    return TranscodeChunk.objects.create(
        job=job,
        kind=kind,
        index=index,
        start_seconds=60.0 * index if kind == ChunkKind.VIDEO else 0,
        seconds=60.0,
        state=state,
        worker=worker if ran else "",
        heartbeat_at=now - timedelta(seconds=heartbeat_ago) if ran else None,
        started_at=now - timedelta(seconds=heartbeat_ago) if ran else None,
        enqueued_at=now - timedelta(seconds=heartbeat_ago + 1),
        attempts=attempts,
        progress=progress,
    )


def sent_chunks(callbacks) -> list[tuple]:
    return [c.args for c in callbacks if getattr(c, "task", None) is transcode_chunk]


# --- the reaper ---------------------------------------------------------------------------------


def test_a_silent_chunk_goes_back_to_the_queue_and_its_task_is_sent(
    django_capture_on_commit_callbacks,
):
    job = chunked_job()
    silent = chunk_of(job, 1, heartbeat_ago=300, attempts=1)
    beating = chunk_of(job, 2)
    with django_capture_on_commit_callbacks() as callbacks:
        counts = transcode_reap()
    assert counts["chunks_requeued"] == 1
    assert sent_chunks(callbacks) == [(silent.pk,)]
    sent = next(c for c in callbacks if getattr(c, "task", None) is transcode_chunk)
    assert sent.options["soft_time_limit"] >= 600
    silent.refresh_from_db()
    assert (silent.state, silent.worker, silent.interruption) == (
        ChunkState.QUEUED,
        "",
        CHUNK_SILENT,
    )
    assert silent.attempts == 1  # counted when it runs again
    beating.refresh_from_db()
    assert (beating.state, beating.worker) == (ChunkState.RUNNING, "chunk-host:2")
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
    assert TranscodeJob.objects.filter(content=job.content).count() == 1


def test_a_queued_chunk_whose_task_never_ran_is_sent_again(django_capture_on_commit_callbacks):
    job = chunked_job()
    lost = chunk_of(job, 0, state=ChunkState.QUEUED, attempts=0)
    recent = chunk_of(job, 1, state=ChunkState.QUEUED, attempts=0)
    TranscodeChunk.objects.filter(pk=lost.pk).update(
        enqueued_at=timezone.now() - RESEND_AFTER - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert transcode_reap()["chunks_resent"] == 1
    assert sent_chunks(callbacks) == [(lost.pk,)]
    lost.refresh_from_db()
    assert lost.enqueued_at > timezone.now() - timedelta(minutes=1)  # not sent every minute
    recent.refresh_from_db()
    assert recent.state == ChunkState.QUEUED


@pytest.mark.parametrize(
    ("kind", "index", "part"),
    [(ChunkKind.VIDEO, 2, "from 2:00"), (ChunkKind.AUDIO, 0, "the audio")],
)
def test_a_chunk_whose_runs_died_max_attempts_times_fails_its_job_and_names_the_part(
    settings, django_capture_on_commit_callbacks, kind, index, part
):
    settings.TRANSCODE_MAX_ATTEMPTS = 3
    job = chunked_job()
    dying = chunk_of(job, index, kind=kind, heartbeat_ago=300, attempts=3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        transcode_reap()
    assert sent_chunks(callbacks) == []
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == (
        f"Encoding stopped 3 times on the same part of the video ({part}); "
        "retry later or contact us."
    )
    job.content.refresh_from_db()
    assert (job.content.status, job.content.error) == (ContentStatus.FAILED, job.error)
    dying.refresh_from_db()
    assert dying.state == ChunkState.RUNNING  # not queued again


def test_a_chunk_whose_dead_worker_is_on_this_host_fails_its_job_on_the_last_attempt(settings):
    """The claim's take-over counts the deaths too: no fourth run."""
    settings.TRANSCODE_MAX_ATTEMPTS = 3
    job = chunked_job()
    dying = chunk_of(job, 1, worker=DEAD_HERE, attempts=3)
    assert chunk_run(chunk_id=dying.pk).attempts == 3
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "Encoding stopped 3 times on the same part of the video (from 1:00)" in job.error


def test_the_other_silent_chunks_of_a_job_that_failed_are_not_queued_again(
    settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODE_MAX_ATTEMPTS = 2
    job = chunked_job()
    chunk_of(job, 0, heartbeat_ago=300, attempts=2)
    other = chunk_of(job, 1, heartbeat_ago=300, attempts=1)
    with django_capture_on_commit_callbacks() as callbacks:
        counts = transcode_reap()
    assert TranscodeJob.objects.get(pk=job.pk).state == JobState.FAILED
    assert counts["chunks_requeued"] == 0
    assert sent_chunks(callbacks) == []
    assert TranscodeChunk.objects.get(pk=other.pk).state == ChunkState.RUNNING


def test_the_reaper_never_restarts_a_chunked_job_whose_chunks_beat(
    django_capture_on_commit_callbacks,
):
    """The job's own task died long ago (its heartbeat is old); its chunks go on elsewhere."""
    job = chunked_job(heartbeat_ago=600, worker="gone-host:1")
    running = chunk_of(job, 0, worker="chunk-host:2")
    with django_capture_on_commit_callbacks() as callbacks:
        counts = transcode_reap()
    assert (counts["restarted"], counts["chunks_requeued"]) == (0, 0)
    assert [
        c for c in callbacks if getattr(c, "task", None) in (transcode_job, transcode_chunk)
    ] == []
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
    assert TranscodeJob.objects.filter(content=job.content).count() == 1
    assert TranscodeChunk.objects.get(pk=running.pk).state == ChunkState.RUNNING
    # A chunk's beat keeps its job alive too.
    before = job.heartbeat_at
    ChunkRun(TranscodeChunk.objects.select_related("job").get(pk=running.pk), "chunk-host:2").beat()
    job.refresh_from_db()
    assert job.heartbeat_at > before + timedelta(seconds=590)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chunked")
def test_a_run_that_an_outage_interrupted_is_not_a_death(
    chunked_clip, media_root, tmp_path, settings, own_s3
):
    """Storage went away under a chunk's first run (the task retries it), then the worker of
    its next run died: one death, not two, so the chunk runs again."""
    settings.TRANSCODE_MAX_ATTEMPTS = 2
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    chunk = chunks[("video", 0)]
    own_s3["server"].stop()
    with pytest.raises(StorageUnavailable):
        chunk_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert (chunk.state, chunk.attempts, chunk.interruption) == (
        ChunkState.QUEUED,
        0,
        "Interrupted (StorageUnavailable); the chunk was queued again.",
    )
    own_s3["server"] = ThreadedMotoServer(
        ip_address="127.0.0.1", port=own_s3["port"], verbose=False
    )
    own_s3["server"].start()
    # The next run is claimed (a run counted), and its worker dies (on this host).
    TranscodeChunk.objects.filter(pk=chunk.pk).update(
        state=ChunkState.RUNNING,
        worker=DEAD_HERE,
        attempts=F("attempts") + 1,
        heartbeat_at=timezone.now(),
    )
    done = chunk_run(chunk_id=chunk.pk)
    assert (done.state, done.attempts, done.interruption) == (
        ChunkState.SUCCEEDED,
        2,
        CHUNK_STOPPED,
    )
    assert TranscodeJob.objects.get(pk=job.pk).state == JobState.RUNNING


# --- the claim ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.CANCELLED, JobState.SUCCEEDED])
def test_a_chunk_task_of_a_job_that_ended_does_nothing(state):
    job = chunked_job()
    queued = chunk_of(job, 0, state=ChunkState.QUEUED, attempts=0)
    orphan = chunk_of(job, 1, worker=DEAD_HERE, attempts=1)
    TranscodeJob.objects.filter(pk=job.pk).update(state=state)
    assert transcode_chunk.run(queued.pk) == ChunkState.QUEUED
    assert transcode_chunk.run(orphan.pk) == ChunkState.RUNNING
    assert TranscodeChunk.objects.get(pk=queued.pk).attempts == 0
    assert TranscodeChunk.objects.get(pk=orphan.pk).attempts == 1


def test_a_chunk_task_of_a_deleted_content_does_nothing():
    job = chunked_job()
    chunk = chunk_of(job, 0, state=ChunkState.QUEUED, attempts=0)
    content_delete(content=job.content)
    assert transcode_chunk.run(chunk.pk) is None


def test_a_chunk_that_another_live_worker_runs_is_not_taken(settings):
    job = chunked_job()
    elsewhere = chunk_of(job, 0, worker="chunk-host:2", heartbeat_ago=10)
    here = chunk_of(job, 1, worker=ALIVE_HERE, heartbeat_ago=10)
    for chunk in (elsewhere, here):
        assert transcode_chunk.run(chunk.pk) == ChunkState.RUNNING
        chunk.refresh_from_db()
        assert chunk.attempts == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chunked")
def test_a_chunk_task_delivered_twice_runs_once(chunked_clip, media_root, tmp_path):
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    (chunk_id,) = json.loads(json.dumps([chunks[("video", 0)].pk]))
    assert transcode_chunk.run(chunk_id) == ChunkState.SUCCEEDED
    first = TranscodeChunk.objects.get(pk=chunk_id)
    assert transcode_chunk.run(chunk_id) == ChunkState.SUCCEEDED  # redelivered: nothing runs
    again = TranscodeChunk.objects.get(pk=chunk_id)
    assert (again.attempts, again.finished_at, again.record) == (1, first.finished_at, first.record)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chunked")
def test_deleting_the_content_stops_a_running_chunk(
    chunked_clip, media_root, tmp_path, settings, caplog
):
    settings.TRANSCODE_HEARTBEAT_SECONDS = 0.2
    settings.TRANSCODE_PRESET = "veryslow"  # an encode that lasts until it is stopped
    settings.TRANSCODE_LADDER = [r for r in settings.TRANSCODE_LADDER if r["height"] == 480]
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    chunk_id = chunks[("video", 1)].pk
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(chunk=chunk_run(chunk_id=chunk_id, worker=ALIVE_HERE))
    )
    thread.start()
    try:
        ffmpeg_pid = wait_for(
            lambda: next(iter(processes_with(f"{job.id}/video-1/")), None), 30, "FFmpeg"
        )
        content_delete(content=content)
        wait_for(lambda: not alive(ffmpeg_pid), 10, "FFmpeg to be stopped")
    finally:
        thread.join(30)
    assert not thread.is_alive()
    assert outcome == {"chunk": None}  # the chunk went with its job; no error
    assert "transcode chunk cancelled" in caplog.text
    assert not (settings.TRANSCODE_WORK_DIR / str(job.id) / "video-1").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chunked")
def test_a_chunked_job_whose_chunks_cannot_be_listed_fails_and_the_reaper_goes_on(
    chunked_clip, media_root, tmp_path, short_clip
):
    """A chunk's worker recorded it done, then died before listing it in the manifests; the
    reaper lists it, finds that it does not fit (its init segment differs), fails the job as
    the chunk's run would have, and still restarts the other jobs."""
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    chunk_run(chunk_id=chunks[("audio", 0)].pk)
    first = chunk_run(chunk_id=chunks[("video", 0)].pk)
    record = json.loads(json.dumps(first.record))
    record["tracks"]["0"]["init_signature"] = "another encoder's"
    TranscodeChunk.objects.filter(pk=chunks[("video", 1)].pk).update(
        state=ChunkState.SUCCEEDED, progress=100, record=record
    )
    TranscodeJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    other = stale_running(store_source(ContentFactory(), short_clip))
    counts = transcode_reap()
    assert counts["restarted"] == 1
    assert TranscodeJob.objects.get(pk=other.pk).state == JobState.FAILED  # and replaced
    job.refresh_from_db()
    content.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, INCOMPLETE)
    assert "init segment differs" in job.stderr_tail
    assert (content.status, content.published_job_id, content.playable_seconds) == (
        ContentStatus.FAILED,
        None,
        None,
    )


# --- operations: the admin and /metrics ---------------------------------------------------------


def test_the_job_admin_shows_its_chunks(staff, client):
    staff.is_superuser = True
    staff.save()
    job = chunked_job()
    done = chunk_of(job, 0, state=ChunkState.SUCCEEDED, attempts=2)
    finished_at = done.started_at + timedelta(seconds=75)
    TranscodeChunk.objects.filter(pk=done.pk).update(
        encode_seconds=71.25, finished_at=finished_at, interruption=CHUNK_STOPPED, progress=100
    )
    chunk_of(job, 1, worker="encoder-7:4242", progress=40)
    chunk_of(job, 2, state=ChunkState.QUEUED, attempts=0)
    chunk_of(job, 0, kind=ChunkKind.AUDIO, state=ChunkState.SUCCEEDED)
    client.force_login(staff)
    response = client.get(f"/admin/transcode/transcodejob/{job.pk}/change/")
    assert response.status_code == 200
    rows = chunk_rows(response.content.decode())
    assert [
        (row["kind"], row["index"], row["start_seconds"], row["state"], row["attempts"])
        for row in rows
    ] == [
        ("Audio (whole)", "0", "0.0", "Succeeded", "1"),
        ("Video (every rung)", "0", "0.0", "Succeeded", "2"),
        ("Video (every rung)", "1", "60.0", "Running", "1"),
        ("Video (every rung)", "2", "120.0", "Queued", "0"),
    ]
    retried, running, queued = rows[1], rows[2], rows[3]
    assert (retried["worker"], retried["interruption"]) == ("chunk-host:2", CHUNK_STOPPED)
    assert (retried["progress"], retried["encode_seconds"]) == ("100", "71.25")
    assert "-" not in (retried["started_at"], retried["finished_at"])
    assert (running["worker"], running["progress"], running["finished_at"]) == (
        "encoder-7:4242",
        "40",
        "-",
    )
    assert "-" not in (running["started_at"], running["heartbeat_at"])
    assert (queued["worker"], queued["started_at"], queued["heartbeat_at"]) == ("-", "-", "-")
    # Every chunk on its own list: the queued ones across jobs, and one chunk's page.
    listing = client.get("/admin/transcode/transcodechunk/", {"state__exact": "queued"})
    assert listing.status_code == 200
    assert "1 transcode chunk" in listing.content.decode()
    page = client.get(f"/admin/transcode/transcodechunk/{done.pk}/change/")
    assert page.status_code == 200
    assert CHUNK_STOPPED in page.content.decode()


def chunk_rows(html: str) -> list[dict[str, str]]:
    """The chunk inline's rows: each cell's text by its field (class ``field-<name>``)."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.field, self.in_inline = [], None, False

        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            classes = (attributes.get("class") or "").split()
            if tag == "div" and attributes.get("id") == "chunks-group":
                self.in_inline = True
            if self.in_inline and tag == "tr" and "form-row" in classes:
                self.rows.append({})
            if self.in_inline and tag == "td" and self.rows:
                fields = [c.removeprefix("field-") for c in classes if c.startswith("field-")]
                self.field = fields[0] if fields else None
                if self.field:
                    self.rows[-1][self.field] = ""

        def handle_endtag(self, tag):
            if tag == "td":
                self.field = None

        def handle_data(self, data):
            if self.field:
                self.rows[-1][self.field] += data.strip()

    parser = Rows()
    parser.feed(html)
    return parser.rows


def test_metrics_count_the_chunks_of_running_jobs_by_state(client):
    job = chunked_job()
    chunk_of(job, 0, state=ChunkState.SUCCEEDED)
    chunk_of(job, 1)
    chunk_of(job, 2, state=ChunkState.QUEUED, attempts=0)
    chunk_of(job, 3, state=ChunkState.QUEUED, attempts=0)
    ended = chunked_job()
    TranscodeJob.objects.filter(pk=ended.pk).update(state=JobState.FAILED)
    chunk_of(ended, 0, state=ChunkState.QUEUED, attempts=0)  # never to run: not waiting
    response = client.get("/metrics")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'streamgate_transcode_chunks{state="queued"} 2.0' in page
    assert 'streamgate_transcode_chunks{state="running"} 1.0' in page
    assert 'streamgate_transcode_chunks{state="succeeded"} 1.0' in page


# --- progress -----------------------------------------------------------------------------------


def drain(layer, channel) -> list[dict]:
    messages = []
    while True:
        try:
            event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 1)
        except TimeoutError:
            return messages
        messages.append(event["message"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chunked")
def test_progress_over_the_chunks_never_goes_back_and_reaches_the_encode_end(
    chunked_clip, media_root, tmp_path, settings
):
    settings.TRANSCODE_PROGRESS_INTERVAL = 0  # every report FFmpeg makes
    content = store_source(ContentFactory(), chunked_clip)
    job, chunks = planned(content, tmp_path)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(content_group(content.id), channel)
    video = [chunks[("video", index)] for index in range(3)]  # 8, 8 and 5 seconds
    assert [c.seconds for c in video] == [8.0, 8.0, 5.0]

    chunk_run(chunk_id=video[0].pk)
    assert chunks_percent(job.pk) == pytest.approx(100 * 8 / 21)
    # The second chunk's first run reported halfway, then its worker died (on this host).
    TranscodeChunk.objects.filter(pk=video[1].pk).update(
        state=ChunkState.RUNNING, worker=DEAD_HERE, attempts=1, heartbeat_at=timezone.now()
    )
    dying = TranscodeChunk.objects.select_related("job").get(pk=video[1].pk)
    ChunkRun(dying, DEAD_HERE).progress(50.0, force=True)
    halfway = chunks_percent(job.pk)
    assert halfway == pytest.approx(100 * (8 + 4) / 21)
    # Its task, delivered again, takes it over; FFmpeg is held before its first report.
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(chunk=chunk_run(chunk_id=video[1].pk, worker=ALIVE_HERE))
    )
    thread.start()
    ffmpeg_pid = None
    try:
        ffmpeg_pid = wait_for(
            lambda: next(iter(processes_with(f"{job.id}/video-1/")), None), 30, "FFmpeg"
        )
        os.kill(ffmpeg_pid, signal.SIGSTOP)
        assert TranscodeChunk.objects.get(pk=video[1].pk).attempts == 2
        assert chunks_percent(job.pk) >= halfway  # what the dead run reached still counts
    finally:
        if ffmpeg_pid is not None:
            os.kill(ffmpeg_pid, signal.SIGCONT)
        thread.join(60)
    taken_over = outcome["chunk"]
    assert (taken_over.state, taken_over.attempts) == (ChunkState.SUCCEEDED, 2)
    assert chunks_percent(job.pk) == pytest.approx(100 * 16 / 21)
    # The last video chunk's reports all fall to the throttle: its end is reported anyway.
    settings.TRANSCODE_PROGRESS_INTERVAL = 10**9
    chunk_run(chunk_id=video[2].pk)
    assert chunks_percent(job.pk) == 100
    content.refresh_from_db()
    assert content.status == ContentStatus.PROCESSING  # the audio is still to come
    assert content.progress == STAGE_SPAN["encode"][1]
    assert content.overall_progress == overall_percent("encode", 100)

    reports = [m for m in drain(layer, channel) if m["type"] == "transcode"]
    encode = [m for m in reports if m["stage"] == "encode"]
    percents = [m["percent"] for m in encode]
    assert percents == sorted(percents), percents
    assert min(p for p in percents if p > halfway - 1) >= round(halfway, 1)
    assert percents[-1] == 100.0
    overall = [m["overall"] for m in encode]
    assert overall == sorted(overall)
    assert overall[-1] == overall_percent("encode", 100)

    chunk_run(chunk_id=chunks[("audio", 0)].pk)
    content.refresh_from_db()
    assert (content.status, content.progress, content.overall_progress) == (
        ContentStatus.READY,
        100,
        100,
    )
