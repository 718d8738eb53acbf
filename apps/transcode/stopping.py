"""A worker told to stop (SIGTERM: a rollout, a scale-down) stops its encodes at once; their jobs
and messages go back to the queue for another worker.

Celery's warm shutdown (SIGTERM) waits for running tasks however long they take: an encode would
hold a rollout for minutes, and past the orchestrator's grace period the worker is killed, its
job left "running" until the reaper notices the silent heartbeat and its message unacknowledged
until Redis's visibility timeout (a day). Celery's soft shutdown ends with SIGTERM to the pool
process, which runs no code of ours (the job row stays "running"). So we keep the warm shutdown
and add this: the worker's main process tells each pool process running a task to stop (SIGUSR2;
in a solo or threads pool the flag is this very process's), the encode's watchdog stops FFmpeg
(apps/transcode/runner.py), the job goes back to QUEUED with nothing published
(services/running.py), and the task rejects its message with requeue (tasks.py; acks_late: it was
never acknowledged), so another worker starts the encode again from the beginning.

Chunks of a long video are not stopped: each is at most TRANSCODE_CHUNK_SECONDS of video, and the
warm shutdown waits for it.
"""

import os
import signal
import threading
from contextlib import suppress
from typing import Any

from celery import signals
from celery.worker import state as worker_state

STOP_SIGNAL = signal.SIGUSR2

_stopping = threading.Event()


class WorkerStopping(Exception):
    """This worker is shutting down: the job goes back to the queue for another worker."""


def stopping() -> bool:
    """Whether this worker (process) was told to stop."""
    return _stopping.is_set()


def _on_stop_signal(signum: int, frame: Any) -> None:
    _stopping.set()


@signals.worker_process_init.connect
def _listen_for_stop(**kwargs: Any) -> None:
    """In each prefork pool process: the main process's SIGUSR2 means "stop"."""
    signal.signal(STOP_SIGNAL, _on_stop_signal)


@signals.worker_shutting_down.connect
def _tell_running_tasks(how: str = "", **kwargs: Any) -> None:
    """In the main process, from its SIGTERM (or SIGINT, SIGQUIT) handler: stop every task that
    runs. A pool process that runs none is left alone (it exits with the pool)."""
    _stopping.set()  # a solo or threads pool runs its tasks in this process
    for request in list(worker_state.active_requests):
        pid = request.worker_pid
        if pid and pid != os.getpid():
            with suppress(ProcessLookupError):
                os.kill(pid, STOP_SIGNAL)
