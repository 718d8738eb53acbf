"""Each log event is written once, by every process `make run` starts (its output is what a
developer reads, and what a log shipper counts)."""

import time
import uuid

from django.conf import settings

from tests.support.celery_tasks import log_probe
from tests.support.processes import celery_worker, embedded_env, http_get, manage, web_server


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
    with celery_worker(env, log, queues="default", include="tests.support.celery_tasks"):
        log_probe.delay(marker).get(timeout=30)
        time.sleep(0.5)
    assert occurrences(log, f"app logged {marker}") == 1, log.read_text()[-3000:]
    assert occurrences(log, f"django logged {marker}") == 1, log.read_text()[-3000:]
