"""StreamGate's Prometheus metrics, and the /metrics view.

Counters and histograms are updated where things happen (web and worker processes). With
PROMETHEUS_MULTIPROC_DIR set (``make run`` and compose set it), every process writes its
samples there and /metrics adds them up, so the workers' task failures and transcode times
show on the web process's page. Values that live in the database or the broker (jobs by
state, queue depth) are read when /metrics is scraped.
"""

import logging
import os
from collections.abc import Callable, Iterable

import prometheus_client
from celery.signals import task_failure
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import Metric

from streamgate.disk_usage import disk_usage_metrics
from streamgate.metrics_access import metrics_refusal

logger = logging.getLogger(__name__)

BROKER_PROBE_TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}

UPLOAD_BYTES = Counter(
    "streamgate_upload_bytes_total", "Bytes stored by tus PATCH and creation-with-upload."
)
UPLOAD_STORAGE_ERRORS = Counter(
    "streamgate_upload_storage_errors_total",
    "Upload storage failures (a full or read-only disk, S3 away), by stage: receive (a tus "
    "request answered 503) or finalize (assembling or reading the source; the task retries).",
    ["stage"],
)
UPLOADS_ACTIVE = Gauge(
    "streamgate_uploads_active", "Upload requests writing right now.", multiprocess_mode="livesum"
)
TRANSCODE_SECONDS = Histogram(
    "streamgate_transcode_duration_seconds",
    "Wall time of successful transcode jobs.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200),
)
TRANSCODE_REALTIME = Histogram(
    "streamgate_transcode_realtime_factor",
    "Seconds of media encoded per second of wall time, per successful job.",
    buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20),
)
TRANSCODE_FINISHED = Counter(
    "streamgate_transcode_jobs_finished_total",
    "Transcode jobs that ended, by outcome: succeeded (published), failed (the content says "
    "why) or lost (its worker stopped answering; the reaper queued the next attempt).",
    ["outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "streamgate_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: succeeded (2xx), retrying (failed, another attempt "
    "is scheduled), failed (given up after the retry schedule, or the endpoint was disabled) or "
    "refused (the endpoint resolves to an address webhooks may not reach).",
    ["outcome"],
)
TASK_FAILURES = Counter(
    "streamgate_task_failures_total", "Celery tasks that raised, by task.", ["task"]
)
GATE_DECISIONS = Counter(
    "streamgate_gate_decisions_total", "Gate decisions by result.", ["result"]
)  # allow | deny | error
GATE_CACHE = Counter(
    "streamgate_gate_cache_lookups_total",
    "Ownership questions answered from the cache (hit) or sent to a chain (miss).",
    ["outcome"],
)
RPC_SECONDS = Histogram(
    "streamgate_rpc_duration_seconds",
    "Ownership RPC calls by chain and outcome (ok | error).",
    ["chain", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NONCE_RECONCILED = Counter(
    "streamgate_signer_nonce_reconciled_total",
    "Times the signer's nonce row was healed to agree with the chain (apps/chain/nonces.py), by "
    "chain and reason (nonce_too_low | nonce_too_high | gap_filled).",
    ["chain", "reason"],
)
RPC_REQUESTS = Counter(
    "streamgate_rpc_requests_total",
    "HTTP calls to chain RPC providers (apps/chain/providers.py), by chain, provider (host:port) "
    "and outcome (ok | error | timeout; a JSON-RPC error answer is ok).",
    ["chain", "provider", "outcome"],
)
INDEXER_LAG = Gauge(
    "streamgate_chain_indexer_lag_blocks",
    "Chain head minus the last indexed block.",
    ["chain"],
    multiprocess_mode="mostrecent",
)
WEBSOCKETS = Gauge(
    "streamgate_websocket_connections",
    "Open progress websockets.",
    multiprocess_mode="livesum",
)
EDGE_RESPONSES = Counter(
    "streamgate_edge_responses_total",
    "Content API reads the edge answered from its cache (hit), or passed to Django on a miss "
    "(miss) or with Redis away (pass).",
    ["outcome"],
)
KEY_FAST_RESPONSES = Counter(
    "streamgate_key_fast_responses_total",
    "HLS key GETs answered from a remembered gate decision before Django (served), or passed "
    "to Django's view (pass: nothing remembered, a generation moved, a refused token…).",
    ["outcome"],
)
STREAM_FAST_RESPONSES = Counter(
    "streamgate_stream_fast_responses_total",
    "/stream/ GETs and HEADs answered from disk before Django (served), or passed to Django's "
    "view (pass: a refused token, a missing file, an unsatisfiable range…).",
    ["outcome"],
)
UPLOAD_FAST_RESPONSES = Counter(
    "streamgate_upload_fast_responses_total",
    "tus PATCHes appended and answered before Django (served), or passed to Django's view "
    "(pass: a session, a refused token, another offset, a lease held, an outage…).",
    ["outcome"],
)
BEACON_FAST_RESPONSES = Counter(
    "streamgate_beacon_fast_responses_total",
    "Beacons recorded and answered before Django (served), or passed to Django's view (pass: "
    "a refusal, a rate limit, an outage, a cross-origin request…).",
    ["outcome"],
)
# Audience (apps/access/audience.py): what players report in their beacons.
PLAYBACK_TTFF = Histogram(
    "streamgate_playback_ttff_seconds",
    "Time to first frame reported by players: from the play request to the first frame shown.",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
PLAYBACK_REBUFFER_RATIO = Histogram(
    "streamgate_playback_rebuffer_ratio",
    "Share of each beacon's playing time spent rebuffering (stalled, not seeking).",
    buckets=(0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
)
BEACONS = Counter("streamgate_beacons_total", "Player beacons accepted.")
VIEWS_COUNTED = Counter(
    "streamgate_views_total", "Views counted (one per viewer per content per window)."
)
# Every label value exported from the start (at 0): increase() cannot see a series' first
# increment, so an alert on the first upload storage error needs the series before it.
for _stage in ("receive", "finalize"):
    UPLOAD_STORAGE_ERRORS.labels(stage=_stage)
for _outcome in ("succeeded", "failed", "lost"):
    TRANSCODE_FINISHED.labels(outcome=_outcome)
DEPENDENCY_UNAVAILABLE = Counter(
    "streamgate_dependency_unavailable_total",
    "Requests that found a dependency away: answered 503 (refused) or served without it "
    "(degraded), by dependency (database, cache, broker, storage).",
    ["dependency", "action"],
)


@task_failure.connect
def _count_task_failure(sender=None, **_):
    TASK_FAILURES.labels(task=getattr(sender, "name", "unknown")).inc()


# Gauges read at scrape time that apps contribute from their AppConfig.ready(), by name (a
# second registration replaces the first): transcode registers "transcode_jobs", the Celery
# app (streamgate/celery.py) "queue_depth".
_STATE_SOURCES: dict[str, Callable[[], Iterable[Metric]]] = {}


def state_source_register(name: str, source: Callable[[], Iterable[Metric]]) -> None:
    """Add ``source()``'s metric families to every scrape of /metrics."""
    _STATE_SOURCES[name] = source


class StateCollector:
    """What the apps and the Celery app (queue depths) contribute, read at scrape time."""

    def collect(self):
        for source in list(_STATE_SOURCES.values()):
            yield from source()


state_source_register("disk", disk_usage_metrics)  # the embedded mode's local disks

_state_registry = CollectorRegistry()  # collected at scrape time only
_state_registry.register(StateCollector())


# Labelled series exported at 0 before their first increment (increase() cannot see a series'
# first one), for label values known only from settings: apps register a starter, run before
# each scrape (the chain app: the nonce counter for each configured EVM chain).
_SERIES_STARTERS: dict[str, Callable[[], None]] = {}


def series_starter_register(name: str, starter: Callable[[], None]) -> None:
    _SERIES_STARTERS[name] = starter


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus page, for allowed addresses and holders of the token (metrics_access)."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    for starter in list(_SERIES_STARTERS.values()):
        starter()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    body = prometheus_client.generate_latest(registry)
    body += prometheus_client.generate_latest(_state_registry)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
