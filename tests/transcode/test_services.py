"""The transcode workflow around the encode: queueing, S3, retry, re-publishing, the reaper."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.transcode.ladder import UnusableSource, check_complete
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services import (
    RESTARTED_DATABASE,
    WORKER_SILENT,
    WORKER_STOPPED,
    transcode_reap,
    transcode_request,
    transcode_retry,
    transcode_run,
    worker_lost,
)
from apps.transcode.tasks import transcode_job, transcode_outputs_prune
from tests.factories import ContentFactory
from tests.support.media import make_video
from tests.transcode.conftest import encode, store_source

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("svc") / "clip.mp4", seconds=3, size="640x360")


def test_a_checked_source_queues_a_job_after_commit(clip, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        content = store_source(ContentFactory(), clip)
    assert content.status == ContentStatus.QUEUED
    job = TranscodeJob.objects.get(content=content)
    assert (job.state, job.attempt) == (JobState.QUEUED, 1)
    assert job.output_prefix == f"renditions/{content.id}/{job.id}/"
    sent = [c for c in callbacks if getattr(c, "task", None) is transcode_job]
    assert [c.args for c in sent] == [(str(job.id),)]
    assert sent[0].options["soft_time_limit"] >= 600
    assert sent[0].options["time_limit"] > sent[0].options["soft_time_limit"]
    # Asking again while one is queued changes nothing.
    assert transcode_request(content=content) == job


def test_task_arguments_survive_json_and_a_second_delivery(clip):
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    (job_id,) = json.loads(json.dumps([str(job.id)]))
    assert transcode_job.run(job_id) == JobState.SUCCEEDED
    assert transcode_job.run(job_id) == JobState.SUCCEEDED  # redelivered: nothing happens
    assert TranscodeJob.objects.filter(content=content).count() == 1


def test_on_s3_outputs_carry_content_types_and_cache_headers(clip, s3_storage):
    content, job = encode(clip)
    assert content.status == ContentStatus.READY, content.error
    head = s3_storage.meta.client.head_object
    prefix = job.output_prefix
    segment = head(Bucket=s3_storage.name, Key=prefix + "chunk-stream0-00001.m4s")
    assert segment["ContentType"] == "video/iso.segment"
    assert "immutable" in segment["CacheControl"]
    master = head(Bucket=s3_storage.name, Key=prefix + "master.m3u8")
    assert master["ContentType"] == "application/vnd.apple.mpegurl"
    assert master["CacheControl"] == "private, no-cache"
    mpd = head(Bucket=s3_storage.name, Key=prefix + "manifest.mpd")
    assert mpd["ContentType"] == "application/dash+xml"
    keys = {o.key for o in s3_storage.objects.filter(Prefix=prefix)}
    assert {prefix + "poster.jpg", prefix + "storyboard.vtt"} <= keys


def test_republishing_replaces_renditions_and_deletes_old_outputs(
    clip, media_root, django_capture_on_commit_callbacks
):
    content, first = encode(clip)
    old_outputs = media_root / first.output_prefix
    assert old_outputs.is_dir()
    with django_capture_on_commit_callbacks() as callbacks:
        second = transcode_request(content=content, enqueue=False)
        transcode_run(job_id=str(second.id))
    (prune,) = [c for c in callbacks if getattr(c, "task", None) is transcode_outputs_prune]
    assert prune.args == (str(content.id), str(second.id))
    assert prune.task.run(*prune.args) > 0  # what the worker does with it
    content.refresh_from_db()
    assert content.published_job_id == second.id
    assert list(content.renditions.values_list("name", flat=True)) == ["360p"]
    assert content.renditions.get().playlist.startswith(second.output_prefix)
    assert not old_outputs.exists()
    assert (media_root / second.output_prefix / "master.m3u8").exists()


def test_retry_requeues_a_failed_content(clip, django_capture_on_commit_callbacks):
    content = store_source(ContentFactory(), clip)
    content.status = ContentStatus.FAILED
    content.error = "Encoding took longer than allowed"
    content.save()
    with django_capture_on_commit_callbacks() as callbacks:
        job = transcode_retry(content=content)
    content.refresh_from_db()
    assert (content.status, content.error) == (ContentStatus.QUEUED, "")
    assert job.state == JobState.QUEUED
    assert [c.args for c in callbacks if getattr(c, "task", None) is transcode_job] == [
        (str(job.id),)
    ]


def test_retry_api(clip, client_for, viewer):
    content = store_source(ContentFactory(), clip)
    owner = client_for(content.owner)
    url = f"/api/v1/contents/{content.id}/retry/"
    response = owner.post(url)
    assert response.status_code == 409
    assert response.json()["reason"] == "not_failed"
    content.status = ContentStatus.FAILED
    content.save()
    assert client_for(viewer).post(url).status_code == 404
    response = owner.post(url)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_retry_without_a_source_is_409(client_for):
    content = ContentFactory(status=ContentStatus.FAILED)
    response = client_for(content.owner).post(f"/api/v1/contents/{content.id}/retry/")
    assert response.status_code == 409
    assert response.json()["reason"] == "no_source"


def test_check_complete():
    check_complete(expected=10, encoded=9.4)
    with pytest.raises(UnusableSource, match="probably truncated"):
        check_complete(expected=10, encoded=4)


# --- the reaper ---------------------------------------------------------------------------------


def stale_running(content, attempt=1, restart=False):
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        worker="another-host:123",
        attempt=attempt,
        restart=restart,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    return TranscodeJob.objects.get(pk=job.pk)


def test_reaper_restarts_a_job_whose_worker_died(clip, django_capture_on_commit_callbacks):
    content = store_source(ContentFactory(), clip)
    job = stale_running(content)
    with django_capture_on_commit_callbacks() as callbacks:
        assert transcode_reap()["restarted"] == 1
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, WORKER_SILENT)
    successor = TranscodeJob.objects.get(content=content, attempt=2)
    assert successor.state == JobState.QUEUED
    assert [c.args for c in callbacks if getattr(c, "task", None) is transcode_job] == [
        (str(successor.id),)
    ]


def test_reaper_gives_up_after_the_last_attempt(clip, settings):
    settings.TRANSCODE_MAX_ATTEMPTS = 2
    content = store_source(ContentFactory(), clip)
    stale_running(content, attempt=2, restart=True)  # the first attempt already died
    transcode_reap()
    content.refresh_from_db()
    assert content.status == ContentStatus.FAILED
    assert "stopped 2 times" in content.error
    assert not TranscodeJob.objects.filter(content=content, state=JobState.QUEUED).exists()


def test_a_retry_by_the_creator_starts_the_attempt_count_again(clip, settings):
    settings.TRANSCODE_MAX_ATTEMPTS = 2
    content = store_source(ContentFactory(), clip)
    stale_running(content, attempt=7, restart=False)  # many earlier jobs, then a user retry
    transcode_reap()
    content.refresh_from_db()
    assert content.status == ContentStatus.QUEUED
    assert TranscodeJob.objects.get(content=content, attempt=8).restart is True


def test_a_job_that_beat_meanwhile_is_not_ended(clip):
    """The reaper saw a stale heartbeat, but the job beat before the reaper's UPDATE."""
    content = store_source(ContentFactory(), clip)
    job = stale_running(content)
    TranscodeJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    stale = timezone.now() - timedelta(seconds=60)
    assert worker_lost(job=job, stale_before=stale).ended is False
    assert TranscodeJob.objects.get(pk=job.pk).state == JobState.RUNNING


def test_reaper_leaves_live_jobs_alone(clip):
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, worker="another-host:123", heartbeat_at=timezone.now()
    )
    assert transcode_reap() == {
        "restarted": 0,
        "resent": 0,
        "requested": 0,
        "chunks_requeued": 0,
        "chunks_resent": 0,
    }


def test_reaper_queues_content_that_lost_its_job(clip, django_capture_on_commit_callbacks):
    content = store_source(ContentFactory(), clip)  # queued, but the signal's job never came
    type(content).objects.filter(pk=content.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10)
    )
    TranscodeJob.objects.filter(content=content).delete()
    with django_capture_on_commit_callbacks():
        assert transcode_reap()["requested"] == 1
    assert TranscodeJob.objects.filter(content=content, state=JobState.QUEUED).count() == 1


def test_a_redelivered_task_of_a_dead_worker_starts_the_next_attempt(clip):
    """Same host, the recorded pid is gone: no need to wait for missed heartbeats."""
    import socket

    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:999999",
        heartbeat_at=timezone.now(),
    )
    finished = transcode_run(job_id=str(job.id))
    assert (finished.state, finished.error) == (JobState.FAILED, WORKER_STOPPED)  # known dead
    content.refresh_from_db()
    assert content.status == ContentStatus.READY
    assert content.published_job.attempt == 2


def test_a_retry_of_the_same_task_takes_back_the_job_it_could_not_requeue(clip, media_root):
    """Its run ended on a database error and could not put the job back in the queue."""
    import os
    import socket

    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:{os.getpid()}",  # alive: not a dead worker's job
        heartbeat_at=timezone.now(),
        task_id="task-1",
        task_retries=0,
    )
    leftover = media_root / job.output_prefix / "chunk-stream0-00009.m4s"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half an upload")
    # The same message delivered again, or another task: not theirs to run.
    assert transcode_run(job_id=str(job.id), task_id="task-1", task_retries=0).state == "running"
    assert transcode_run(job_id=str(job.id), task_id="task-2", task_retries=3).state == "running"
    assert leftover.exists()
    # The task's retry takes it back at once, says why, and publishes a whole new set.
    done = transcode_run(job_id=str(job.id), task_id="task-1", task_retries=1)
    assert (done.state, done.interruption, done.task_retries) == (
        JobState.SUCCEEDED,
        RESTARTED_DATABASE,
        1,
    )
    content.refresh_from_db()
    assert (content.status, content.published_job_id) == (ContentStatus.READY, job.id)
    assert not leftover.exists()
    assert (media_root / job.output_prefix / "master.m3u8").exists()
    assert TranscodeJob.objects.filter(content=content).count() == 1


def test_worker_lost_only_ends_a_running_job(clip):
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    assert worker_lost(job=job).ended is False  # queued, not running


def test_signed_source_urls_are_not_recorded(clip, s3_storage):
    content, job = encode(clip)
    assert content.status == ContentStatus.READY, content.error
    assert "Signature" not in job.command
    assert "<signature removed>" in job.command
    assert "Signature" not in job.stderr_tail


def test_a_storage_outage_requeues_the_job_instead_of_failing_the_video(clip, own_s3):
    from moto.server import ThreadedMotoServer

    from apps.content.storage import StorageUnavailable

    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    own_s3["server"].stop()  # storage goes away before the worker reads the source
    with pytest.raises(StorageUnavailable):
        transcode_run(job_id=str(job.id))
    job.refresh_from_db()
    content.refresh_from_db()
    assert job.state == JobState.QUEUED  # claimable again by the task's retry
    assert content.status != ContentStatus.FAILED
    own_s3["server"] = ThreadedMotoServer(
        ip_address="127.0.0.1", port=own_s3["port"], verbose=False
    )
    own_s3["server"].start()  # moto keeps its buckets in this process: the data is back
    assert transcode_run(job_id=str(job.id)).state == JobState.SUCCEEDED
    content.refresh_from_db()
    assert content.status == ContentStatus.READY


def test_give_up_fails_a_job_that_kept_hitting_transient_errors(clip):
    from apps.transcode.services import transcode_give_up

    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    transcode_give_up(job_id=str(job.id), message="Storage was unavailable for too long.")
    job.refresh_from_db()
    content.refresh_from_db()
    assert job.state == JobState.FAILED
    assert (content.status, content.error) == (
        ContentStatus.FAILED,
        "Storage was unavailable for too long.",
    )


def test_work_folders_of_killed_workers_are_swept(clip, settings):
    content = store_source(ContentFactory(), clip)
    dead = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=dead.pk).update(state=JobState.FAILED)
    work = settings.TRANSCODE_WORK_DIR
    (work / str(dead.id) / "storyboard").mkdir(parents=True)
    (work / str(dead.id) / "chunk-stream0-00001.m4s").write_bytes(b"x" * 1000)
    (work / "not-a-job").mkdir()
    content2 = store_source(ContentFactory(), clip)
    job = transcode_request(content=content2, enqueue=False)
    transcode_run(job_id=str(job.id))
    assert list(work.iterdir()) == []


def test_ingest_command(clip, media_root):
    import io

    from django.core.management import call_command

    from tests.factories import CreatorFactory

    owner = CreatorFactory(username="ingester")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "ingest", str(clip), "--title", "Ingested", "--owner", "ingester", stdout=out, stderr=err
    )
    content = owner.contents.get()
    assert (content.title, content.status) == ("Ingested", ContentStatus.READY)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("HLS:  http://127.0.0.1:8000/stream/")
    assert lines[0].endswith(f"/{content.id}/master.m3u8")
    assert lines[1].endswith(f"/{content.id}/manifest.mpd")
    assert "Ready: 1 renditions" in err.getvalue()
    # The printed links play: the owner's signed token opens the stream.
    from django.test import Client

    master = Client().get(lines[0].split("8000", 1)[1])
    assert master.status_code == 200
    assert master.content.startswith(b"#EXTM3U")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--owner", "nobody"], "No user 'nobody'"),
        (["--owner", "viewer-only"], "Only creators can publish content."),
    ],
)
def test_ingest_refuses_bad_owners(clip, args, message):
    from django.core.management import CommandError, call_command

    from tests.factories import UserFactory

    UserFactory(username="viewer-only")
    with pytest.raises(CommandError, match=message):
        call_command("ingest", str(clip), "--title", "x", *args)


def test_ingest_refuses_a_file_that_is_not_a_video(tmp_path):
    from django.core.management import CommandError, call_command

    from tests.factories import CreatorFactory

    CreatorFactory(username="ingester2")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n" * 100)
    with pytest.raises(CommandError, match="not a video"):
        call_command("ingest", str(notes), "--title", "x", "--owner", "ingester2")


def test_admin_retry_action(clip, staff, client, django_capture_on_commit_callbacks):
    staff.is_superuser = True
    staff.save()
    content = store_source(ContentFactory(), clip)
    job = transcode_request(content=content, enqueue=False)
    TranscodeJob.objects.filter(pk=job.pk).update(state=JobState.FAILED)
    type(content).objects.filter(pk=content.pk).update(status=ContentStatus.FAILED)
    client.force_login(staff)
    with django_capture_on_commit_callbacks():
        response = client.post(
            "/admin/transcode/transcodejob/",
            {"action": "retry_content", "_selected_action": [str(job.id)]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 content(s) queued again." in response.content.decode()
    content.refresh_from_db()
    assert content.status == ContentStatus.QUEUED
