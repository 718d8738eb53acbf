"""The transcode app's gauges on /metrics, read at scrape time (registered with
``streamgate.metrics.state_source_register`` in TranscodeConfig.ready())."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from apps.transcode.models import JobState, TranscodeJob


def transcode_jobs_gauge() -> Iterator[GaugeMetricFamily]:
    """Transcode jobs by state."""
    jobs = GaugeMetricFamily(
        "streamgate_transcode_jobs", "Transcode jobs by state.", labels=["state"]
    )
    counted = dict(TranscodeJob.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in JobState.values:
        jobs.add_metric([state], counted.get(state, 0))
    yield jobs
