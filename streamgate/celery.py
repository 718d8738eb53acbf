"""The Celery application: queues, routing and the one helper that enqueues after commit.

Configuration comes from Django settings (``CELERY_*``); routing lives here, in one place.
"""

import os
from typing import Any

from celery import Celery, Task
from django.db import transaction
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.production")

QUEUES = ("uploads", "transcode", "chain", "default")

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
    "apps.uploads.*": {"queue": "uploads"},
    "apps.transcode.*": {"queue": "transcode"},
    "apps.chain.*": {"queue": "chain"},
}
app.autodiscover_tasks()

# Request ids travel from the web process into the tasks it sends (signal handlers).
import streamgate.metrics  # noqa: E402  (task failures)
import streamgate.observability  # noqa: E402, F401


class EnqueueOnCommit:
    """A callback that sends one task when the surrounding transaction commits.

    An object rather than a lambda so that tests can read what a service enqueued from
    ``django_capture_on_commit_callbacks`` without running it.
    """

    def __init__(
        self, task: Task, args: tuple, kwargs: dict[str, Any], options: dict[str, Any] | None = None
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.options = options or {}

    def __call__(self) -> None:
        self.task.apply_async(args=self.args, kwargs=self.kwargs, **self.options)

    def __repr__(self) -> str:
        return f"EnqueueOnCommit({self.task.name}, args={self.args!r}, kwargs={self.kwargs!r})"


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` with JSON-safe ids once the current transaction commits.

    Outside a transaction it is sent at once."""
    transaction.on_commit(EnqueueOnCommit(task, args, kwargs))


def enqueue_on_commit_with(task: Task, args: tuple, *, options: dict[str, Any]) -> None:
    """As enqueue_on_commit, with apply_async options (time limits, countdown)."""
    transaction.on_commit(EnqueueOnCommit(task, args, {}, options))
