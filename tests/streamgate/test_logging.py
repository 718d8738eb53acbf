"""Each log event is written once, by every process `make run` starts (its output is what a
developer reads, and what a log shipper counts)."""

import time
import uuid

from django.conf import settings

from streamgate.celery import app
from tests.support.processes import (
    celery_worker,
    embedded_env,
    http_get,
    manage,
    wait_for_log,
    web_server,
)


def occurrences(log, text: str) -> int:
    return sum(text in line for line in log.read_text(errors="replace").splitlines())


def test_the_web_server_logs_each_event_once(tmp_path, logs_dir):
    """Debug on, where Django adds its own console handler to the `django` logger."""
    env = embedded_env(tmp_path, DJANGO_DEBUG="1")
    manage(env, "migrate", "--noinput")
    marker = uuid.uuid4().hex
    log = logs_dir / "web.log"
    with web_server(env, log) as base:
        assert http_get(f"{base}/missing-{marker}/")[0] == 404
        time.sleep(0.5)
    assert occurrences(log, f"Not Found: /missing-{marker}/") == 1, log.read_text()[-3000:]


def test_the_worker_logs_each_event_once(tmp_path, logs_dir):
    env = embedded_env(tmp_path, DJANGO_DEBUG="1", REDIS_URL=settings.REDIS_URL)
    marker = uuid.uuid4().hex
    log = logs_dir / "worker.log"
    with celery_worker(env, log, queues="default", include="tests.support.celery_tasks") as worker:
        # Through StreamGate's app by name: a shared task follows whichever app is current.
        app.send_task("apps.content.tasks.log_probe", args=[marker], queue="default")
        wait_for_log(f"django logged {marker}", timeout=30, process=worker, log=log)
        wait_for_log("succeeded in", timeout=30, process=worker, log=log)
        time.sleep(0.5)
    assert occurrences(log, f"app logged {marker}") == 1, log.read_text()[-3000:]
    assert occurrences(log, f"django logged {marker}") == 1, log.read_text()[-3000:]
