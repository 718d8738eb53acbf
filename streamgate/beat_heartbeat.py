"""Beat's heartbeat: when the beat process last sent a scheduled task, on /metrics.

Beat is one process (``celery beat``, or embedded in a worker with ``-B``), often on another
machine than the web process that answers /metrics. After each task it publishes, it writes the
time into the shared cache (Redis, or the embedded mode's cache folder); the web process reads it
at scrape time as ``streamgate_beat_last_run_timestamp_seconds`` and the ``BeatNotRunning`` alert
fires when it grows old or is missing (deploy/prometheus/alerts.yml). It is written by beat itself,
not by a task a worker runs, so a stopped beat is told apart from stopped workers (those show as a
growing queue depth). Written by hand: Celery keeps no liveness record of beat that another
process can read.
"""

import logging
import time
from collections.abc import Iterator

import redis.exceptions
from celery.signals import after_task_publish, beat_embedded_init, beat_init
from django.core.cache import cache
from django_redis.exceptions import ConnectionInterrupted
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

CACHE_KEY = "streamgate:beat:last-run"
METRIC = "streamgate_beat_last_run_timestamp_seconds"
# Beat sends a few tasks per 15 s (its shortest period): one cache write a second at most is
# plenty for an alert measured in minutes, and spares the cache a burst of writes at startup.
MIN_INTERVAL = 1.0
# What a cache that is away raises: django-redis (Redis), the file-based cache (embedded mode).
CACHE_AWAY = (ConnectionInterrupted, redis.exceptions.RedisError, OSError)

_state = {"in_beat": False, "written": 0.0}


@beat_init.connect
@beat_embedded_init.connect
def _beat_started(sender=None, **_) -> None:
    _state["in_beat"] = True
    beat_heartbeat_record()


@after_task_publish.connect
def _task_published(sender=None, **_) -> None:
    if _state["in_beat"] and time.time() - _state["written"] >= MIN_INTERVAL:
        beat_heartbeat_record()


def beat_heartbeat_record(*, now: float | None = None) -> None:
    """Write the time beat was last seen alive. A cache that is away is logged, never raised:
    a heartbeat must not stop beat (the missing updates fire the alert soon enough)."""
    now = time.time() if now is None else now
    try:
        cache.set(CACHE_KEY, now, timeout=None)
    except CACHE_AWAY as error:
        logger.warning("beat heartbeat not recorded", extra={"error": repr(error)})
        return
    _state["written"] = now


def beat_heartbeat_metrics() -> Iterator[GaugeMetricFamily]:
    """The gauge, or no sample when beat never wrote one (or the cache is away): the alert
    treats a missing series as a beat that is not running."""
    gauge = GaugeMetricFamily(
        METRIC, "Unix time at which Celery beat last sent a scheduled task (its heartbeat)."
    )
    try:
        last = cache.get(CACHE_KEY)
    except CACHE_AWAY as error:  # the page still answers without it
        logger.warning("beat heartbeat unavailable", extra={"error": repr(error)})
        last = None
    if last is not None:
        gauge.add_metric([], float(last))
    yield gauge
