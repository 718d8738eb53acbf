"""Every write in the transcode workflow: queue a job, run it, publish it, fail it, retry it.

The workflow is split by responsibility: ``requesting`` queues and retries jobs, ``running``
claims and runs one job to its end, ``reaper`` replaces jobs whose worker died and resends
lost work, and ``outputs`` deletes what jobs left in storage. This package re-exports the
public names, so callers import them from ``apps.transcode.services``.
"""

from apps.transcode.services.chunking import chunk_run as transcode_chunk_run
from apps.transcode.services.chunking import chunks_percent, transcode_chunk_give_up
from apps.transcode.services.outputs import transcode_outputs_prune
from apps.transcode.services.reaper import (
    WORKER_SILENT,
    WORKER_STOPPED,
    WorkerLost,
    transcode_reap,
    worker_lost,
)
from apps.transcode.services.requesting import (
    on_source_ready,
    time_limits,
    transcode_request,
    transcode_retry,
)
from apps.transcode.services.running import (
    RESTARTED_DATABASE,
    RESTARTED_REDIS,
    RESTARTED_STORAGE,
    restart_reason,
    this_worker,
    transcode_give_up,
    transcode_run,
    unavailable_dependency,
)

__all__ = [
    "RESTARTED_DATABASE",
    "RESTARTED_REDIS",
    "RESTARTED_STORAGE",
    "WORKER_SILENT",
    "WORKER_STOPPED",
    "WorkerLost",
    "on_source_ready",
    "chunks_percent",
    "restart_reason",
    "this_worker",
    "time_limits",
    "transcode_chunk_give_up",
    "transcode_chunk_run",
    "transcode_give_up",
    "transcode_outputs_prune",
    "transcode_reap",
    "transcode_request",
    "transcode_retry",
    "transcode_run",
    "unavailable_dependency",
    "worker_lost",
]
