"""Riding out a database outage inside a running job.

FFmpeg needs no database: a job needs it only to beat its heart, report progress and move from
one stage to the next. During a PostgreSQL restart or failover those writes fail with
OperationalError (or InterfaceError), and a connection that failed stays broken until it is
closed. So the job closes the broken connection (the next query opens a new one) and tries
again: progress is skipped, heartbeats wait for the watchdog's next beat, and the writes the job
cannot go on without are retried, backing off, for up to TRANSCODE_DATABASE_PATIENCE seconds.
Past that the error propagates: the job goes back to the queue and its task retries it.
"""

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

# What a database that is away (restarting, failing over, unreachable) raises.
DATABASE_AWAY = (OperationalError, InterfaceError)

FIRST_PAUSE = 0.5
LONGEST_PAUSE = 5.0

Result = TypeVar("Result")


def reset_connection() -> None:
    """Close this thread's connection (after a failed query it stays broken), so that the next
    query opens a new one. Inside a transaction nothing is closed: its owner rolls back."""
    if connection.in_atomic_block:
        return
    with suppress(DatabaseError):  # closing a dead connection can fail too; it is gone anyway
        connection.close()


def wait_out(
    operation: Callable[[], Result],
    *,
    job_id: str,
    what: str,
    on_failure: Callable[[], object] = lambda: None,
) -> Result:
    """``operation()``, tried again while the database is away, for up to
    TRANSCODE_DATABASE_PATIENCE seconds; then its error. ``on_failure`` runs after each failed
    try (the caller notes the outage)."""
    deadline = time.monotonic() + settings.TRANSCODE_DATABASE_PATIENCE
    pause = FIRST_PAUSE
    while True:
        try:
            return operation()
        except DATABASE_AWAY as error:
            on_failure()
            if connection.in_atomic_block or time.monotonic() + pause > deadline:
                raise
            logger.warning(
                "database unavailable; the job waits for it",
                extra={"job_id": job_id, "what": what, "error": str(error)[:200]},
            )
            reset_connection()
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
