"""Real Celery workers consuming real messages through Redis (and the embedded broker)."""

import subprocess
import sys
import time

import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.content.services import content_delete
from streamgate.celery import app
from tests.factories import ContentFactory
from tests.support import celery_tasks
from tests.support.processes import ROOT, celery_worker, embedded_env

PROBES = {
    "uploads": celery_tasks.uploads_probe,
    "transcode": celery_tasks.transcode_probe,
    "chain": celery_tasks.chain_probe,
    "default": celery_tasks.default_probe,
}


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("apps.uploads.tasks.upload_finalize", "uploads"),
        ("apps.transcode.tasks.transcode_run", "transcode"),
        ("apps.chain.tasks.chain_index", "chain"),
        ("apps.content.tasks.content_files_delete", "default"),
        ("apps.access.tasks.anything", "default"),
    ],
)
def test_routes_by_app(task_name, queue):
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue


def worker_env(tmp_path) -> dict[str, str]:
    """A worker on the suite's Redis, with its own media folder."""
    return embedded_env(
        tmp_path, DJANGO_SETTINGS_MODULE="streamgate.settings.test", REDIS_URL=settings.REDIS_URL
    )


def test_worker_consumes_only_its_queues_through_redis(tmp_path, logs_dir):
    client = redis.Redis.from_url(settings.REDIS_URL)
    for queue in PROBES:
        client.delete(queue)
    with celery_worker(
        worker_env(tmp_path),
        logs_dir / "worker.log",
        queues="transcode,uploads",
        include="tests.support.celery_tasks",
    ):
        transcode = PROBES["transcode"].delay({"n": 1})
        uploads = PROBES["uploads"].delay({"n": 2})
        chain = PROBES["chain"].delay({"n": 3})
        assert transcode.get(timeout=30)["routing_key"] == "transcode"
        assert transcode.get()["args"] == [{"n": 1}]
        assert uploads.get(timeout=30)["routing_key"] == "uploads"
        time.sleep(1)
        # Nobody consumes "chain": its message waits in Redis, untouched.
        assert chain.state == "PENDING"
        assert client.llen("chain") == 1

    with celery_worker(
        worker_env(tmp_path),
        logs_dir / "worker-chain.log",
        queues="chain",
        include="tests.support.celery_tasks",
    ):
        assert chain.get(timeout=30)["routing_key"] == "chain"
    assert client.llen("chain") == 0


@pytest.mark.django_db(transaction=True)
def test_content_delete_task_runs_on_a_real_worker(tmp_path, logs_dir, settings, s3_storage):
    """The whole path: service -> on_commit -> Redis -> worker process -> S3 objects gone."""
    content = ContentFactory()
    default_storage.save(f"sources/{content.id}/original.mp4", ContentFile(b"video"))
    default_storage.save(f"renditions/{content.id}/j/master.m3u8", ContentFile(b"#EXTM3U"))
    options = settings.STORAGES["default"]["OPTIONS"]
    env = worker_env(tmp_path)
    env.update(
        S3_ENDPOINT_URL=options["endpoint_url"],
        S3_BUCKET=options["bucket_name"],
        S3_ACCESS_KEY="test",
        S3_SECRET_KEY="test",
    )
    with celery_worker(env, logs_dir / "worker.log", queues="default"):
        content_delete(content=content)
        deadline = time.monotonic() + 30
        while list(s3_storage.objects.all()) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert list(s3_storage.objects.all()) == []
    assert "content_files_delete" in (logs_dir / "worker.log").read_text()


def test_embedded_broker_carries_tasks_between_processes(tmp_path, logs_dir):
    """No server at all: kombu's filesystem transport and the file result backend."""
    env = embedded_env(tmp_path)
    media = tmp_path / "media"
    (media / "sources" / "abc").mkdir(parents=True)
    (media / "sources" / "abc" / "file.mp4").write_bytes(b"x")
    script = (
        "from streamgate.celery import app; "
        "import django; django.setup(); "
        "r = app.send_task('apps.content.tasks.content_files_delete', args=['abc']); "
        "print(r.get(timeout=30))"
    )
    with celery_worker(env, logs_dir / "worker.log", queues="default"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1"
    assert not (media / "sources" / "abc").exists()
