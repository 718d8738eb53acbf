"""The Celery application: queues, routing, the one helper that enqueues after commit (through
the outbox) and the one list of transient errors that tasks retry.

Configuration comes from Django settings (``CELERY_*``); routing lives here, in one place.
"""

import logging
import os
from typing import TYPE_CHECKING, Any

import kombu.exceptions
import redis.exceptions
from celery import Celery, Task
from celery.signals import beat_init, worker_init, worker_process_init
from django import db
from django.db import transaction
from django_redis.exceptions import ConnectionInterrupted as CacheUnavailable
from kombu import Exchange, Queue
from prometheus_client.core import GaugeMetricFamily

from apps.content.storage import StorageUnavailable
from streamgate.tracing import tracing_configure

if TYPE_CHECKING:
    from apps.content.models import OutboxMessage

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.production")
logger = logging.getLogger(__name__)

QUEUES = ("uploads", "transcode", "chain", "webhooks", "default")

app = Celery("streamgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
]
app.conf.task_default_queue = "default"
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
# Each app's tasks go to the queue of their kind of work; everything else to "default".
app.conf.task_routes = {
    # Before "apps.content.*" would match them: webhook deliveries have their own workers,
    # so a slow receiver never holds up encodes or housekeeping.
    "apps.content.webhooks.*": {"queue": "webhooks"},
    "apps.uploads.*": {"queue": "uploads"},
    "apps.transcode.*": {"queue": "transcode"},
    "apps.chain.*": {"queue": "chain"},
}
app.autodiscover_tasks()

# Request ids travel from the web process into the tasks it sends (signal handlers).
import streamgate.observability  # noqa: E402, F401

# Beat writes its heartbeat after each task it sends (signal handlers); /metrics reads it.
from streamgate.beat_heartbeat import beat_heartbeat_metrics  # noqa: E402
from streamgate.metrics import (  # noqa: E402  (and task failures, counted by its signal handler)
    BROKER_PROBE_TIMEOUTS,
    state_source_register,
)


# Tracing (streamgate/tracing.py), when configured: each process that runs tasks gets its own
# exporter and batch thread, so a prefork worker sets up in its children, never in the parent.
@worker_process_init.connect
def _trace_worker_process(**_: Any) -> None:
    tracing_configure(service="streamgate-worker")


@worker_init.connect
def _trace_thread_worker(sender: Any = None, **_: Any) -> None:
    # The threads pool runs tasks in the worker's own process and sends no worker_process_init.
    pool = getattr(sender, "pool_cls", None)  # the pool's class (a name when set in code)
    if (pool if isinstance(pool, str) else getattr(pool, "__module__", "")) in (
        "threads",
        "celery.concurrency.thread",
    ):
        tracing_configure(service="streamgate-worker")


@beat_init.connect
def _trace_beat(**_: Any) -> None:
    tracing_configure(service="streamgate-beat")


def queue_depths() -> dict[str, int]:
    """Messages waiting in each of our queues, from the broker (Redis or the filesystem)."""
    depths = {}
    # A scrape waits 2 s at most on a broker that does not answer (the workers' own
    # connections keep their longer timeouts).
    with app.connection_for_read(transport_options=BROKER_PROBE_TIMEOUTS) as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except connection.channel_errors:  # never declared yet: nothing waits in it
                depths[queue] = 0
    return depths


def _queue_depth_metrics():
    depth = GaugeMetricFamily(
        "streamgate_queue_depth", "Messages waiting per Celery queue.", labels=["queue"]
    )
    try:
        for queue, waiting in queue_depths().items():
            depth.add_metric([queue], waiting)
    except (OSError, kombu.exceptions.OperationalError) as error:  # the page still answers
        logger.warning("queue depth unavailable", extra={"error": repr(error)})
    yield depth


state_source_register("queue_depth", _queue_depth_metrics)
state_source_register("beat_heartbeat", beat_heartbeat_metrics)

# Failures of a dependency that is away (database, storage, cache or broker), not of the work:
# tasks retry these with backoff (``autoretry_for=TRANSIENT``); anything else fails once.
TRANSIENT = (
    StorageUnavailable,
    db.OperationalError,
    db.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    CacheUnavailable,
    kombu.exceptions.OperationalError,
)
# How tasks retry them: 5 s, 10 s, 20 s … capped at 2 min, jittered (a restarting database is
# not hit by every worker at once), about 12 minutes in all; then the task fails and leaves its
# row to the app's reaper, which runs every few minutes.
RETRY_TRANSIENT: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 10,
}


class EnqueueOnCommit:
    """A callback that sends one task when the surrounding transaction commits.

    The task is also written to the outbox in that transaction (apps/content/outbox.py): if the
    broker is away at commit, the send is logged and left to the outbox relay instead of failing
    the request that already committed its work. An object rather than a lambda so that tests
    can read what a service enqueued from ``django_capture_on_commit_callbacks`` without running it.
    """

    def __init__(
        self,
        task: Task,
        args: tuple,
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
        *,
        message: "OutboxMessage",
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.options = options or {}
        self.message = message

    def __call__(self) -> None:
        # Imported when used, not at the top: this module loads at start-up (streamgate/__init__),
        # before Django's app registry, and the outbox is a model.
        from apps.content.outbox import outbox_send

        outbox_send(message=self.message)

    def __repr__(self) -> str:
        return f"EnqueueOnCommit({self.task.name}, args={self.args!r}, kwargs={self.kwargs!r})"


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` with JSON-safe ids once the current transaction commits; sent later by
    the outbox relay if the broker is away then. Outside a transaction it is sent at once."""
    _enqueue(task, args, kwargs, {})


def enqueue_on_commit_with(task: Task, args: tuple, *, options: dict[str, Any]) -> None:
    """As enqueue_on_commit, with apply_async options (time limits, countdown)."""
    _enqueue(task, args, {}, options)


def _enqueue(task: Task, args: tuple, kwargs: dict[str, Any], options: dict[str, Any]) -> None:
    from apps.content.outbox import outbox_add  # when used: see EnqueueOnCommit.__call__

    message = outbox_add(task=task.name, args=args, kwargs=kwargs, options=options)
    transaction.on_commit(EnqueueOnCommit(task, args, kwargs, options, message=message))
