"""Finalisation and the reaper, called as the Celery task bodies with JSON-safe arguments."""

import hashlib
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.content.signals import source_ready
from apps.uploads.finalize import FINALIZE_LEASE, RENEW_EVERY, ClaimLost, FinalizeClaim
from apps.uploads.models import Upload, UploadState
from apps.uploads.tasks import upload_finalize, uploads_reap
from tests.support.faults import fault_proxy
from tests.support.media import ffmpeg_binary, make_video
from tests.support.processes import ROOT, embedded_env
from tests.uploads.conftest import Tus, upload_of

pytestmark = pytest.mark.django_db


def run(task, *args):
    return task.run(*json.loads(json.dumps(args)))


@pytest.fixture
def tus(creator, tus_for) -> Tus:
    return tus_for(creator)


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2).read_bytes()


@pytest.fixture
def ready_signals():
    received = []

    def listener(sender, content_id, **kwargs):
        received.append(content_id)

    source_ready.connect(listener)
    yield received
    source_ready.disconnect(listener)


def test_a_real_video_ends_queued(
    tus, media_root, video_bytes, ready_signals, django_capture_on_commit_callbacks
):
    location = tus.upload(video_bytes, chunk=40_000, filename="clip.mp4")
    upload = upload_of(location)
    with django_capture_on_commit_callbacks(execute=True):
        assert run(upload_finalize, str(upload.id)) == "finalized"
    upload.refresh_from_db()
    content = upload.content
    source = media_root / "sources" / str(content.id) / "clip.mp4"
    assert source.read_bytes() == video_bytes
    assert not (media_root / upload.incoming_path).exists()
    expected = hashlib.sha256(video_bytes).hexdigest()
    assert upload.sha256 == expected
    assert (content.source_sha256, content.source_size) == (expected, len(video_bytes))
    assert content.source_path == f"sources/{content.id}/clip.mp4"
    assert content.status == ContentStatus.QUEUED
    assert (content.width, content.height) == (320, 240)
    assert content.duration == pytest.approx(2.0, abs=0.1)
    assert ready_signals == [str(content.id)]


def test_finalize_twice_changes_nothing(
    tus, media_root, video_bytes, ready_signals, django_capture_on_commit_callbacks
):
    upload = upload_of(tus.upload(video_bytes, chunk=len(video_bytes), filename="v.mp4"))
    with django_capture_on_commit_callbacks(execute=True):
        run(upload_finalize, str(upload.id))
    first = Upload.objects.get(pk=upload.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert run(upload_finalize, str(upload.id)) == "finalized"
    second = Upload.objects.get(pk=upload.pk)
    assert (first.finalized_at, first.sha256) == (second.finalized_at, second.sha256)
    assert ready_signals == [str(upload.content_id)]
    assert second.content.status == ContentStatus.QUEUED


def test_a_redelivered_finalize_after_the_move_still_completes(tus, media_root, video_bytes):
    """The worker died after moving the file but before recording it; its claim went stale."""
    upload = upload_of(tus.upload(video_bytes, chunk=len(video_bytes), filename="v.mp4"))
    target = media_root / upload.source_path
    target.parent.mkdir(parents=True)
    (media_root / upload.incoming_path).rename(target)
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.FINALIZING,
        finalize_token="dead-worker",
        finalize_renewed_at=timezone.now() - timedelta(hours=4),
    )
    assert run(upload_finalize, str(upload.id)) == "finalized"
    assert Upload.objects.get(pk=upload.pk).content.status == ContentStatus.QUEUED


def test_a_second_finalize_while_one_runs_does_nothing(tus, ready_signals):
    """The reaper resent the task while the first copy still works: one claim at a time."""
    upload = upload_of(tus.upload(b"x" * 100, chunk=100))
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.FINALIZING, finalize_token="busy", finalize_renewed_at=timezone.now()
    )
    assert run(upload_finalize, str(upload.id)) == "finalizing"
    stored = Upload.objects.get(pk=upload.pk)
    assert (stored.finalize_token, stored.content.status) == ("busy", ContentStatus.UPLOADING)
    assert ready_signals == []


def test_a_retry_of_the_same_task_takes_its_claim_back(tus, video_bytes):
    """The task failed on a database error mid-way and Celery retries it (same task id): its
    claim, still fresh, is its own."""
    upload = upload_of(tus.upload(video_bytes, chunk=len(video_bytes), filename="v.mp4"))
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.FINALIZING,
        finalize_token="task-7",
        finalize_renewed_at=timezone.now(),
    )
    result = upload_finalize.apply(args=json.loads(json.dumps([str(upload.id)])), task_id="task-7")
    assert result.get() == "finalized"
    assert Upload.objects.get(pk=upload.pk).content.status == ContentStatus.QUEUED


def test_a_claim_not_renewed_within_the_lease_is_taken_over(tus, video_bytes):
    """The worker died (or its task gave up retrying) minutes ago: not hours of waiting."""
    upload = upload_of(tus.upload(video_bytes, chunk=len(video_bytes), filename="v.mp4"))
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.FINALIZING,
        finalize_token="dead-task",
        finalize_renewed_at=timezone.now() - FINALIZE_LEASE - timedelta(seconds=1),
    )
    assert run(upload_finalize, str(upload.id)) == "finalized"


def test_the_claim_is_renewed_while_reading_and_lost_when_taken_over(tus):
    upload = upload_of(tus.upload(b"x" * 100, chunk=100))
    before = timezone.now() - timedelta(minutes=1)
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.FINALIZING, finalize_token="mine", finalize_renewed_at=before
    )
    claim = FinalizeClaim(str(upload.id), "mine")
    claim.renew()  # called after every chunk; writes only every RENEW_EVERY seconds
    assert Upload.objects.get(pk=upload.pk).finalize_renewed_at == before
    claim.renewed_at -= RENEW_EVERY
    claim.renew()
    assert Upload.objects.get(pk=upload.pk).finalize_renewed_at > before
    Upload.objects.filter(pk=upload.pk).update(finalize_token="another")
    claim.renewed_at -= RENEW_EVERY
    with pytest.raises(ClaimLost):
        claim.renew()


def test_a_renewal_with_the_database_away_lets_the_read_go_on(tmp_path):
    """In a process whose PostgreSQL refuses connections, the renewal logs and returns: the
    hashing goes on, and the final write (or the task's retry) decides."""
    with fault_proxy(5432) as postgres:
        postgres.down()
        env = embedded_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE="streamgate.settings.test",
            DATABASE_URL=f"postgres://root@127.0.0.1:{postgres.port}/nowhere",
            DATABASE_CONN_MAX_AGE="60",  # a plain connection: refused at once, no pool wait
            LOG_FORMAT="plain",
        )
        script = (
            "from apps.uploads.finalize import FinalizeClaim\n"
            "claim = FinalizeClaim('0b5c5d2e-4b8f-4d5e-9d47-1f0f5d1c2a3b', 'mine', renewed_at=0)\n"
            "claim.renew()\n"
            "claim.renew()\n"
            "print('read goes on')\n"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.stdout.strip().splitlines()[-1] == "read goes on", result.stderr
    # One warning: the second call came before RENEW_EVERY, so it did not try again.
    assert result.stderr.count("finalize claim not renewed, the database is unavailable") == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some notes, not a video\n" * 100, "not a video we can read"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500, "not a video we can read"),
    ],
)
def test_a_non_media_file_ends_failed_and_is_kept(tus, media_root, data, message, ready_signals):
    upload = upload_of(tus.upload(data, chunk=len(data), filename="notes.mp4"))
    assert run(upload_finalize, str(upload.id)) == "finalized"
    upload.refresh_from_db()
    content = upload.content
    assert content.status == ContentStatus.FAILED
    assert message in content.error
    assert "Upload an MP4" in content.error
    assert (media_root / content.source_path).read_bytes() == data
    assert content.source_size == len(data)
    assert ready_signals == []


def test_an_audio_only_file_ends_failed(tus, tmp_path, ready_signals):
    audio = tmp_path / "tone.m4a"
    subprocess.run(
        [
            ffmpeg_binary(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:a",
            "aac",
            str(audio),
        ],
        check=True,
    )
    upload = upload_of(tus.upload(audio.read_bytes(), chunk=10**6, filename="tone.m4a"))
    run(upload_finalize, str(upload.id))
    content = Upload.objects.get(pk=upload.pk).content
    assert content.status == ContentStatus.FAILED
    assert content.error == "This is an audio file: StreamGate needs a video stream to publish."


def test_lost_bytes_fail_with_a_message(tus, media_root):
    upload = upload_of(tus.upload(b"x" * 100, chunk=100))
    (media_root / upload.incoming_path).unlink()
    assert run(upload_finalize, str(upload.id)) == "failed"
    content = Upload.objects.get(pk=upload.pk).content
    assert content.status == ContentStatus.FAILED
    assert "upload the file again" in content.error


def test_finalize_of_an_unfinished_upload_does_nothing(tus):
    location = tus.create(100)["Location"]
    tus.patch(location, 0, b"x" * 50)
    assert run(upload_finalize, upload_of(location).id.hex) == "receiving"
    assert upload_of(location).content.status == ContentStatus.UPLOADING


def test_reupload_replaces_the_previous_source(tus, creator, media_root, video_bytes):
    first = upload_of(tus.upload(b"not video" * 10, chunk=1000, filename="first.mp4"))
    run(upload_finalize, str(first.id))
    content = Upload.objects.get(pk=first.pk).content
    assert content.status == ContentStatus.FAILED
    second = upload_of(
        tus.upload(
            video_bytes, chunk=len(video_bytes), filename="second.mp4", content_id=str(content.id)
        )
    )
    run(upload_finalize, str(second.id))
    content.refresh_from_db()
    assert content.status == ContentStatus.QUEUED
    assert content.error == ""
    assert sorted(p.name for p in (media_root / "sources" / str(content.id)).iterdir()) == [
        "second.mp4"
    ]


# --- the reaper ---------------------------------------------------------------------------------


def test_reaper_discards_expired_uploads(tus, media_root):
    location = tus.create(1000)["Location"]
    tus.patch(location, 0, b"x" * 300)
    upload = upload_of(location)
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    counts = run(uploads_reap)
    assert (counts["expired"], counts["discarded"]) == (1, 1)
    upload.refresh_from_db()
    assert upload.state == UploadState.EXPIRED
    assert not (media_root / upload.incoming_path).exists()
    assert upload.content.status == ContentStatus.DRAFT
    assert "expired with 300 of 1000 bytes" in upload.content.error


def test_reaper_leaves_an_expired_upload_alone_while_a_patch_writes(tus, media_root):
    location = tus.create(1000)["Location"]
    tus.patch(location, 0, b"x" * 300)
    Upload.objects.filter(pk=upload_of(location).pk).update(
        expires_at=timezone.now() - timedelta(minutes=1),
        lock_token="writing",
        lock_expires_at=timezone.now() + timedelta(seconds=10),
    )
    assert run(uploads_reap)["expired"] == 0
    assert upload_of(location).state == UploadState.RECEIVING
    assert (media_root / upload_of(location).incoming_path).stat().st_size == 300


def test_reaper_never_touches_a_complete_upload(tus, media_root):
    upload = upload_of(tus.upload(b"x" * 100, chunk=100))
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(days=1))
    run(uploads_reap)
    assert Upload.objects.get(pk=upload.pk).state == UploadState.COMPLETE
    assert (media_root / upload.incoming_path).read_bytes() == b"x" * 100


def test_reaper_retries_deletions_that_failed(tus, media_root):
    location = tus.create(1000)["Location"]
    upload = upload_of(location)
    # Terminated, but the bytes could not be deleted then (storage was down).
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.TERMINATED)
    assert run(uploads_reap)["discarded"] == 1
    assert not (media_root / upload.incoming_path).exists()
    assert Upload.objects.get(pk=upload.pk).discarded_at is not None
    assert run(uploads_reap)["discarded"] == 0


def test_reaper_leaves_live_uploads_alone(tus, media_root):
    location = tus.create(1000)["Location"]
    tus.patch(location, 0, b"x" * 300)
    assert run(uploads_reap) == {
        "expired": 0,
        "orphaned": 0,
        "discarded": 0,
        "refinalized": 0,
        "completed": 0,
    }
    assert (media_root / upload_of(location).incoming_path).stat().st_size == 300


def test_reaper_discards_uploads_whose_content_was_deleted(tus, media_root):
    location = tus.create(1000)["Location"]
    upload = upload_of(location)
    upload.content.delete()
    counts = run(uploads_reap)
    assert (counts["orphaned"], counts["discarded"]) == (1, 1)
    upload.refresh_from_db()
    assert upload.state == UploadState.TERMINATED
    assert not (media_root / upload.incoming_path).exists()
    assert tus.head(location).status_code == 410


def test_reaper_resends_lost_finalizations(tus, django_capture_on_commit_callbacks):
    upload = upload_of(tus.upload(b"x" * 10, chunk=10))
    Upload.objects.filter(pk=upload.pk).update(completed_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert run(uploads_reap)["refinalized"] == 1
    assert [(c.task.name, c.args) for c in callbacks] == [
        ("apps.uploads.tasks.upload_finalize", (str(upload.id),))
    ]


def test_reaper_resends_finalizations_whose_claim_went_stale(
    tus, django_capture_on_commit_callbacks
):
    stale = upload_of(tus.upload(b"x" * 10, chunk=10))
    fresh = upload_of(tus.upload(b"y" * 10, chunk=10))
    now = timezone.now()
    Upload.objects.filter(pk=stale.pk).update(
        state=UploadState.FINALIZING,
        finalize_token="dead",
        finalize_renewed_at=now - FINALIZE_LEASE - timedelta(seconds=1),
    )
    Upload.objects.filter(pk=fresh.pk).update(
        state=UploadState.FINALIZING, finalize_token="alive", finalize_renewed_at=now
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert run(uploads_reap)["refinalized"] == 1
    assert [c.args for c in callbacks] == [(str(stale.id),)]


def test_nothing_stays_finalizing_for_more_than_a_few_minutes(settings):
    """A claim goes stale FINALIZE_LEASE after its last renewal; the next reaper run resends it."""
    reap_every = timedelta(seconds=settings.CELERY_BEAT_SCHEDULE["uploads-reap"]["schedule"])
    assert FINALIZE_LEASE + reap_every <= timedelta(minutes=5)
    assert FINALIZE_LEASE.total_seconds() >= RENEW_EVERY * 4  # a few missed renewals are fine


def test_the_file_is_sniffed_not_judged_by_its_name(tus, media_root, video_bytes, ready_signals):
    """A real video named .txt is a video; (the converse, text named .mp4, is refused above)."""
    upload = upload_of(tus.upload(video_bytes, chunk=len(video_bytes), filename="holiday.txt"))
    assert run(upload_finalize, str(upload.id)) == "finalized"
    upload.refresh_from_db()
    assert upload.content.status == ContentStatus.QUEUED
    assert upload.content.width == 320
