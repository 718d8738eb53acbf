"""PostgreSQL going away in the middle of a real encode, for real: the worker (the Procfile's
line) reaches the database through a proxy that resets every connection and refuses new ones
(`down()`, what a PostgreSQL restart looks like from the client), then comes back (`up()`)."""

import re
import time

import pytest
from django.conf import settings as django_settings

from apps.content.models import Content, ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from tests.factories import ContentFactory
from tests.support.faults import fault_proxy
from tests.support.media import make_video
from tests.support.processes import wait_for_log
from tests.transcode.conftest import store_source
from tests.transcode.test_broker_outage import procfile_worker
from tests.transcode.test_live import encoder_of, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def proxied_env(tmp_path, proxy, **extra) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    return {
        **worker_env(tmp_path),
        "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        **extra,
    }


def finished(content, timeout: float) -> Content:
    return wait_for(
        lambda: Content.objects.filter(
            pk=content.pk, status__in=(ContentStatus.READY, ContentStatus.FAILED)
        ).first(),
        timeout,
        "the content to be ready",
    )


def assert_published_once(content, media_root) -> TranscodeJob:
    """One job, published; its outputs the only ones stored."""
    content.refresh_from_db()
    assert content.status == ContentStatus.READY, content.error
    (job,) = TranscodeJob.objects.filter(content=content)
    assert (job.attempt, job.state) == (1, JobState.SUCCEEDED)
    assert content.published_job_id == job.id
    folder = media_root / "renditions" / str(content.id)
    assert [p.name for p in folder.iterdir()] == [str(job.id)]
    assert (folder / str(job.id) / "master.m3u8").exists()
    return job


def test_an_encode_rides_out_a_database_restart(tmp_path, logs_dir, media_root, settings):
    settings.TRANSCODE_LADDER = django_settings.TRANSCODE_LADDER
    clip = make_video(tmp_path / "clip.mp4", seconds=20, size="1280x720", rate=30)
    log = logs_dir / "worker.log"
    with (
        fault_proxy(int(django_settings.DATABASES["default"]["PORT"])) as proxy,
        procfile_worker(proxied_env(tmp_path, proxy), log) as worker,
    ):
        content = store_source(ContentFactory(), clip)
        job = wait_for(
            lambda: TranscodeJob.objects.filter(content=content, state=JobState.RUNNING).first(),
            60,
            "the job to run",
        )
        wait_for(lambda: encoder_of(job), 60, "FFmpeg to start")
        proxy.down()
        wait_for_log("heartbeat failed", timeout=30, process=worker, log=log)
        time.sleep(12)  # the rest of the outage
        proxy.up()
        back = time.monotonic()
        finished(content, 120)
        print(f"ready {time.monotonic() - back:.0f} s after the database came back")
        wait_for_log(": 'succeeded'", timeout=30, process=worker, log=log)  # the task is done
        assert worker.poll() is None
    job = assert_published_once(content, media_root)
    # The job waited for the database and went on; its record says so.
    assert re.fullmatch(
        r"The database was unavailable for about \d+ s; the job waited for it and went on\.",
        job.interruption,
    ), job.interruption
    text = log.read_text()
    assert "Exception in thread" not in text  # the heartbeat thread lived on
    assert "could not requeue" not in text


def test_past_its_patience_a_job_is_taken_back_by_its_retry(
    tmp_path, logs_dir, media_root, settings
):
    """The database stays away longer than the job waits: the run gives up, cannot put the job
    back in the queue, and the task's retry takes the job back as soon as it can, not after the
    reaper, and encodes it again."""
    clip = make_video(tmp_path / "clip.mp4", seconds=6, size="640x360", rate=30)
    log = logs_dir / "worker.log"
    with (
        fault_proxy(int(django_settings.DATABASES["default"]["PORT"])) as proxy,
        procfile_worker(
            proxied_env(tmp_path, proxy, TRANSCODE_DATABASE_PATIENCE="3"), log
        ) as worker,
    ):
        content = store_source(ContentFactory(), clip)
        job = wait_for(
            lambda: TranscodeJob.objects.filter(content=content, state=JobState.RUNNING).first(),
            60,
            "the job to run",
        )
        ffmpeg = wait_for(lambda: encoder_of(job), 60, "FFmpeg to start")
        proxy.down()
        wait_for(lambda: encoder_of(job) != ffmpeg, 60, "the encode to end during the outage")
        wait_for_log("could not requeue the job", timeout=60, process=worker, log=log)
        proxy.up()
        back = time.monotonic()
        finished(content, 120)
        print(f"ready {time.monotonic() - back:.0f} s after the database came back")
        wait_for_log(": 'succeeded'", timeout=30, process=worker, log=log)  # the task is done
        assert worker.poll() is None
    job = assert_published_once(content, media_root)
    assert job.interruption == "Restarted after the database was unavailable."
    assert job.task_retries >= 1
    assert "transcode restarted" in log.read_text()
