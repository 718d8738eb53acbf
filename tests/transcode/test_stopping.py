"""A worker told to stop before its encode begins (SIGTERM while it probes): the job and its
content go back to the queue, nothing is published, and the task requeues its message. (The
stop in the middle of an encode, with real worker processes: tests/streamgate/
test_graceful_shutdown.py.)"""

import threading

import pytest
from celery.exceptions import Reject

from apps.content.models import ContentStatus
from apps.transcode import stopping
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services import transcode_request, transcode_run
from apps.transcode.services.running import RESTARTED_SHUTDOWN
from apps.transcode.tasks import transcode_job
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.transcode.conftest import store_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def told_to_stop(monkeypatch):
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(stopping, "_stopping", stop)


@pytest.fixture
def queued_job(tmp_path, media_root) -> TranscodeJob:
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    content = store_source(ContentFactory(), clip)
    return transcode_request(content=content, enqueue=False)


def test_a_stop_before_the_encode_puts_the_job_back(queued_job, told_to_stop, media_root):
    with pytest.raises(stopping.WorkerStopping):
        transcode_run(job_id=str(queued_job.id))
    job = TranscodeJob.objects.select_related("content").get(pk=queued_job.pk)
    assert (job.state, job.worker, job.interruption) == (JobState.QUEUED, "", RESTARTED_SHUTDOWN)
    assert job.content.status == ContentStatus.QUEUED
    assert job.content.published_job_id is None
    assert not (media_root / "renditions").exists()


def test_the_task_requeues_its_message(queued_job, told_to_stop):
    with pytest.raises(Reject) as rejected:
        transcode_job.run(str(queued_job.id))
    assert rejected.value.requeue is True
    assert TranscodeJob.objects.get(pk=queued_job.pk).state == JobState.QUEUED


def test_a_job_run_again_after_a_stop_is_encoded_and_published(queued_job, monkeypatch):
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(stopping, "_stopping", stop)
    with pytest.raises(stopping.WorkerStopping):
        transcode_run(job_id=str(queued_job.id))
    stop.clear()  # another worker
    job = transcode_run(job_id=str(queued_job.id))
    assert job.state == JobState.SUCCEEDED
    job.content.refresh_from_db()
    assert job.content.status == ContentStatus.READY
    assert job.content.published_job_id == job.id
