"""The transcode app's gauges on /metrics, read at scrape time (registered with
``streamgate.metrics.state_source_register`` in TranscodeConfig.ready())."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from apps.transcode.models import ChunkState, JobState, TranscodeChunk, TranscodeJob


def transcode_jobs_gauge() -> Iterator[GaugeMetricFamily]:
    """Transcode jobs by state, and the chunks of running jobs by state."""
    jobs = GaugeMetricFamily(
        "streamgate_transcode_jobs", "Transcode jobs by state.", labels=["state"]
    )
    counted = dict(TranscodeJob.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in JobState.values:
        jobs.add_metric([state], counted.get(state, 0))
    yield jobs

    chunks = GaugeMetricFamily(
        "streamgate_transcode_chunks",
        "Chunks of running chunked jobs by state (queued: waiting for a worker).",
        labels=["state"],
    )
    counted = dict(
        TranscodeChunk.objects.filter(job__state=JobState.RUNNING)
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for state in ChunkState.values:
        chunks.add_metric([state], counted.get(state, 0))
    yield chunks
