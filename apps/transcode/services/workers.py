"""Which worker runs a job or a chunk, and whether it is still there."""

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.utils import timezone


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(run) -> bool:
    """The worker of ``run`` (a job or a chunk: ``worker``, ``heartbeat_at``) is known dead
    (same host), or has missed its heartbeats."""
    if is_dead_here(run.worker):
        return True
    stale = timezone.now() - timedelta(seconds=settings.TRANSCODE_STALE_AFTER_SECONDS)
    return run.heartbeat_at is None or run.heartbeat_at < stale


def is_dead_here(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
