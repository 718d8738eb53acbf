"""Real Celery workers consuming real messages through Redis (and the embedded broker)."""

import json
import os
import subprocess
import sys
import time

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.content.services import content_delete
from streamgate.celery import app
from tests.factories import ContentFactory
from tests.support import celery_tasks
from tests.support.processes import (
    ROOT,
    celery_worker,
    embedded_env,
    free_port,
    spawned,
    stop,
    wait_for_port,
)

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


def test_a_request_id_travels_into_the_tasks_it_sends(tmp_path, logs_dir):
    from streamgate.observability import request_id_bound
    from tests.support.celery_tasks import request_id_probe

    env = worker_env(tmp_path)
    env["LOG_FORMAT"] = "json"
    with celery_worker(
        env, logs_dir / "worker.log", queues="default", include="tests.support.celery_tasks"
    ):
        with request_id_bound("req-7f3a"):
            result = request_id_probe.delay()
        assert result.get(timeout=30) == "req-7f3a"
        assert request_id_probe.delay().get(timeout=30) is None  # sent outside any request
    lines = [
        json.loads(line)
        for line in (logs_dir / "worker.log").read_text().splitlines()
        if line.startswith("{")
    ]
    probe = [line for line in lines if line["message"] == "probe ran"]
    assert probe[0]["request_id"] == "req-7f3a"
    assert probe[0]["probe"] == "yes"
    assert probe[1]["request_id"] == "-"


def persistent_redis(folder, port: int, log):
    """redis-server as production runs it: append-only file, fsync on every write."""
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(folder)]
    return spawned(args, env=dict(os.environ), log=log)


def test_tasks_survive_a_redis_restart_and_the_worker_reconnects(tmp_path, logs_dir):
    from tests.support.celery_tasks import chain_probe, default_probe

    port = free_port()
    folder = tmp_path / "redis-data"
    folder.mkdir()
    env = embedded_env(tmp_path / "var", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    producer = Celery("producer", broker=env["REDIS_URL"], backend=env["REDIS_URL"])
    with persistent_redis(folder, port, logs_dir / "redis.log") as redis_process:
        wait_for_port(port, timeout=10, process=redis_process, log=logs_dir / "redis.log")
        with celery_worker(
            env, logs_dir / "worker.log", queues="default", include="tests.support.celery_tasks"
        ):
            assert send(producer, default_probe, 1).get(timeout=30)["args"] == [1]
            # Work nobody consumes yet, waiting in Redis when it restarts.
            waiting = [send(producer, chain_probe, n) for n in range(3)]
            stop(redis_process)
            with persistent_redis(folder, port, logs_dir / "redis-2.log") as again:
                wait_for_port(port, timeout=10, process=again, log=logs_dir / "redis-2.log")
                # The worker reconnects by itself and takes new work.
                assert send(producer, default_probe, 2).get(timeout=60)["args"] == [2]
                with celery_worker(
                    env,
                    logs_dir / "worker-chain.log",
                    queues="chain",
                    include="tests.support.celery_tasks",
                ):
                    assert [r.get(timeout=60)["args"] for r in waiting] == [[0], [1], [2]]


def send(producer, task, n):
    """Send ``task`` through ``producer`` (this Redis), routed as StreamGate routes it."""
    from streamgate.celery import app

    route = app.amqp.router.route({}, task.name)
    queue = route["queue"].name
    return producer.send_task(task.name, args=[n], queue=queue, routing_key=queue)
