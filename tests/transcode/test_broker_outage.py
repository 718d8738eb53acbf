"""The transcode worker as `make run` starts it (the Procfile's line: prefork, two processes,
gossip, mingle and remote control on) through a Redis crash in the middle of a real encode.

Redis is a throwaway server of this test's own, killed with SIGKILL and started again on the same
port with its data, so every connection of the worker breaks at once, as in a real crash.
"""

import time
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.core.files import File
from django.core.files.storage import default_storage
from kombu import Connection

from apps.content.models import Content, ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services import time_limits, transcode_request
from apps.transcode.tasks import transcode_job
from streamgate.celery import app
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.support.processes import BIN, ROOT, spawned, wait_for_log
from tests.support.redis_restart import RestartableRedis
from tests.transcode.test_live import encoder_of, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def procfile_command(name: str) -> str:
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:")
    )
    return line.split(":", 1)[1].strip()


@contextmanager
def procfile_worker(env, log):
    """The Procfile's worker line, run by a shell as `make run` runs it; yields once ready."""
    env = {**env, "PATH": f"{BIN}:{env['PATH']}"}
    command = procfile_command("worker")
    assert "--concurrency ${WORKER_CONCURRENCY:-2}" in command
    assert "--without" not in command  # gossip, mingle and remote control are on
    with spawned(["bash", "-c", f"exec {command}"], env=env, log=log) as process:
        wait_for_log("ready.", timeout=60, process=process, log=log)
        yield process


def queued_content(clip) -> Content:
    """A content whose source is stored and checked, and its queued job (the task is sent by
    the test, to the test's own Redis)."""
    content = ContentFactory(status=ContentStatus.QUEUED, duration=20)
    with clip.open("rb") as handle:
        name = f"sources/{content.id}/{clip.name}"
        content.source_path = default_storage.save(name, File(handle))
    content.save()
    return content


def send(redis_url: str, name: str, *args, **options) -> str:
    with Connection(redis_url) as connection:
        return app.send_task(name, args=args, connection=connection, **options).id


def test_the_worker_rides_out_a_redis_crash_mid_encode(tmp_path, logs_dir, media_root, settings):
    settings.TRANSCODE_LADDER = django_settings.TRANSCODE_LADDER
    clip = make_video(tmp_path / "clip.mp4", seconds=20, size="1280x720", rate=30)
    redis = RestartableRedis(tmp_path / "redis").start()
    log = logs_dir / "worker.log"
    try:
        env = {**worker_env(tmp_path), "REDIS_URL": redis.url}
        with procfile_worker(env, log) as worker:
            content = queued_content(clip)
            job = transcode_request(content=content, enqueue=False)
            send(redis.url, transcode_job.name, str(job.id), **time_limits(content.duration))
            wait_for(lambda: encoder_of(job), 60, "FFmpeg to start")

            redis.kill()
            wait_for_log("Connection to broker lost", timeout=30, process=worker, log=log)
            time.sleep(2)  # the outage: a few seconds without Redis
            redis.start()

            done = wait_for(
                lambda: Content.objects.filter(
                    pk=content.pk, status__in=(ContentStatus.READY, ContentStatus.FAILED)
                ).first(),
                240,
                "the content to be ready",
            )
            assert done.status == ContentStatus.READY, done.error
            # Encoded once: one job, published, its outputs the only ones.
            jobs = TranscodeJob.objects.filter(content=content).values_list("attempt", "state")
            assert list(jobs) == [(1, JobState.SUCCEEDED)]
            assert done.published_job_id == job.id
            folder = media_root / "renditions" / str(content.id)
            assert [p.name for p in folder.iterdir()] == [str(job.id)]

            # The same worker process is still there, and consumes new work.
            reap = send(redis.url, "apps.transcode.tasks.transcode_reap")
            wait_for_log(f"{reap}] succeeded", timeout=60, process=worker, log=log)
            assert worker.poll() is None
        text = log.read_text()
        assert "Unrecoverable error" not in text
        assert "Couldn't ack" not in text  # the encode's message was acknowledged after all
    finally:
        redis.close()
