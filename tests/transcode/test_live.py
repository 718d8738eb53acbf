"""Transcoding on a real Celery worker process: SIGKILL mid-encode, cancellation by deletion,
and progress over the websocket."""

import json
import os
import signal
import time
from contextlib import ExitStack, contextmanager

import pytest
from django.conf import settings as django_settings
from websockets.sync.client import connect

from apps.access.services import api_token_create
from apps.content.models import Content, ContentStatus
from apps.content.services import content_delete
from apps.transcode.models import JobState, TranscodeJob
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.support.processes import (
    alive,
    celery_worker,
    embedded_env,
    parent_of,
    processes_with,
    web_server,
)
from tests.transcode.conftest import store_source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Long enough that an encode is still running when we interfere (default ladder)."""
    return make_video(
        tmp_path_factory.mktemp("live") / "long.mp4", seconds=20, size="1280x720", rate=30
    )


def worker_env(tmp_path) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    return embedded_env(
        tmp_path,  # media in tmp_path/media: the media_root fixture's folder
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        TRANSCODE_PRESET="veryfast",
        MEDIA_ENCRYPTION="0",  # these tests read the clear CMAF each encode leaves
    )


@contextmanager
def transcode_worker(tmp_path, logs_dir, name="worker"):
    with celery_worker(
        worker_env(tmp_path), logs_dir / f"{name}.log", queues="transcode,default", pool="prefork"
    ) as process:
        yield process


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def encoder_of(job: TranscodeJob) -> int | None:
    pids = processes_with(str(job.id))
    return pids[0] if pids else None


def test_a_worker_killed_mid_encode_is_replaced_and_one_set_of_outputs_published(
    tmp_path, logs_dir, long_clip, media_root, settings
):
    settings.TRANSCODE_LADDER = django_settings.TRANSCODE_LADDER
    with transcode_worker(tmp_path, logs_dir):
        content = store_source(ContentFactory(), long_clip)
        first = wait_for(
            lambda: TranscodeJob.objects.filter(
                content=content, attempt=1, state=JobState.RUNNING
            ).first(),
            60,
            "the first attempt to run",
        )
        ffmpeg_pid = wait_for(lambda: encoder_of(first), 60, "FFmpeg to start")
        time.sleep(1.5)  # well into the encode
        pool_child = parent_of(ffmpeg_pid)
        os.kill(pool_child, signal.SIGKILL)
        wait_for(lambda: not alive(ffmpeg_pid), 10, "FFmpeg to die with its worker")
        done = wait_for(
            lambda: Content.objects.filter(
                pk=content.pk, status__in=(ContentStatus.READY, ContentStatus.FAILED)
            ).first(),
            180,
            "the content to be ready",
        )
        assert done.status == ContentStatus.READY, done.error
        jobs = list(TranscodeJob.objects.filter(content=content).order_by("attempt"))
        assert [(j.attempt, j.state) for j in jobs] == [
            (1, JobState.FAILED),
            (2, JobState.SUCCEEDED),
        ]
        assert done.published_job_id == jobs[1].id
        folder = media_root / "renditions" / str(content.id)
        wait_for(
            lambda: [p.name for p in folder.iterdir()] == [str(jobs[1].id)],
            30,
            "only the published job's outputs to remain",
        )
        assert "signal 9" in (logs_dir / "worker.log").read_text()


def test_deleting_a_content_stops_its_encode(tmp_path, logs_dir, long_clip, media_root, settings):
    settings.TRANSCODE_LADDER = django_settings.TRANSCODE_LADDER
    with transcode_worker(tmp_path, logs_dir):
        content = store_source(ContentFactory(), long_clip)
        job = wait_for(
            lambda: TranscodeJob.objects.filter(content=content, state=JobState.RUNNING).first(),
            60,
            "the job to run",
        )
        ffmpeg_pid = wait_for(lambda: encoder_of(job), 60, "FFmpeg to start")
        content_delete(content=content)
        wait_for(lambda: not alive(ffmpeg_pid), 20, "FFmpeg to be stopped")
        wait_for(
            lambda: (
                not (media_root / "renditions" / str(content.id)).exists()
                and not (media_root / "sources" / str(content.id)).exists()
            ),
            30,
            "the content's files to be deleted",
        )
        work = tmp_path / "tmp" / "transcode" / str(job.id)
        wait_for(lambda: not work.exists(), 20, "the work folder to be removed")
        assert "transcode cancelled" in (logs_dir / "worker.log").read_text()


def test_websocket_follows_the_transcode(tmp_path, logs_dir, media_root, settings):
    clip = make_video(tmp_path / "clip.mp4", seconds=6, size="640x360")
    content = ContentFactory()
    _, token = api_token_create(user=content.owner)
    env = worker_env(tmp_path)
    with ExitStack() as stack:
        base = stack.enter_context(web_server(env, logs_dir / "web.log"))
        stack.enter_context(transcode_worker(tmp_path, logs_dir))
        url = base.replace("http", "ws") + f"/ws/contents/{content.id}/"
        messages = []
        with connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
        ) as websocket:
            messages.append(json.loads(websocket.recv(timeout=10)))
            store_source(content, clip)
            while not messages[-1].items() >= {"type": "status", "status": "ready"}.items():
                messages.append(json.loads(websocket.recv(timeout=120)))
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses[0] == "draft"
    assert statuses[-3:] == ["queued", "processing", "ready"]
    progress = [m for m in messages if m["type"] == "transcode"]
    stages = []
    for message in progress:
        if not stages or stages[-1] != message["stage"]:
            stages.append(message["stage"])
    assert stages == ["probe", "encode", "package", "publish"]
    encode = [m["percent"] for m in progress if m["stage"] == "encode"]
    assert encode == sorted(encode)
    assert all(0 <= p <= 100 for p in encode)
