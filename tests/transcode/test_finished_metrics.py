"""streamgate_transcode_jobs_finished_total (the TranscodeFailureRatioHigh alert's series):
each way a job ends is counted once, by outcome, on /metrics."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services import transcode_give_up, transcode_reap, transcode_request
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.transcode.conftest import encode, store_source

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("finished") / "clip.mp4", seconds=1, size="320x180")


def finished(client) -> dict[str, float]:
    """Outcome -> count, as /metrics shows them (every outcome there from the start)."""
    page = client.get("/metrics").content.decode()
    found = re.findall(
        r'^streamgate_transcode_jobs_finished_total\{outcome="(\w+)"\} (\S+)$', page, re.M
    )
    return {outcome: float(value) for outcome, value in found}


def test_a_published_job_counts_as_succeeded_once(client, clip):
    before = finished(client)
    assert set(before) == {"succeeded", "failed", "lost"}
    content, job = encode(clip)
    assert content.status == ContentStatus.READY, content.error
    after = finished(client)
    assert after == {**before, "succeeded": before["succeeded"] + 1}


def test_a_failed_job_counts_as_failed_once(client, clip):
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    before = finished(client)
    transcode_give_up(job_id=str(job.id), message="Storage was unavailable for too long.")
    transcode_give_up(job_id=str(job.id), message="again")  # already ended: not counted again
    assert TranscodeJob.objects.get(pk=job.pk).state == JobState.FAILED
    assert finished(client) == {**before, "failed": before["failed"] + 1}


def test_a_job_whose_worker_died_counts_as_lost(client, clip, django_capture_on_commit_callbacks):
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        worker="another-host:123",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    before = finished(client)
    with django_capture_on_commit_callbacks() as callbacks:
        assert transcode_reap()["restarted"] == 1
    assert finished(client) == before  # counted when the reaper's transaction commits
    for callback in callbacks:
        if getattr(callback, "task", None) is None:  # not the next attempt's task message
            callback()
    assert finished(client) == {**before, "lost": before["lost"] + 1}
