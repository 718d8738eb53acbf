"""Finalisation survives its dependencies going away, injected for real: Redis (the broker)
dies as the last PATCH lands, and PostgreSQL dies while a worker hashes the file. Real uvicorn,
real Celery worker and beat, a TCP proxy that refuses or resets the service's connections."""

import hashlib
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from apps.content.models import Content, ContentStatus, OutboxMessage
from apps.uploads.models import Upload, UploadState
from tests.support.faults import fault_proxy
from tests.support.media import make_padded_video
from tests.support.processes import (
    BIN,
    celery_worker,
    redis_server,
    spawned,
    wait_for_log,
    web_server,
)
from tests.uploads.test_live import server_env
from tests.uploads.test_resume_after_drop import Client, creator_token  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


@contextmanager
def celery_beat(env: dict[str, str], log: Path):
    """Celery beat with the project's schedule, its state file in the env's var folder."""
    args = [str(BIN / "celery"), "--app", "streamgate", "beat", "--loglevel", "INFO"]
    with spawned(args, env=env, log=log) as process:
        wait_for_log("beat: Starting", timeout=60, process=process, log=log)
        yield process


def wait_for(condition, *, timeout: float, message: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(message)


def test_redis_down_as_the_last_patch_lands(tmp_path, logs_dir, creator_token):  # noqa: F811
    """The last PATCH answers 204 at once though the finalise task cannot be sent; once Redis
    is back, beat's outbox relay sends it and the worker finalises the upload."""
    video = make_padded_video(tmp_path / "clip.mp4", total_bytes=3 * MIB).read_bytes()
    with redis_server(logs_dir / "redis.log") as redis_port, fault_proxy(redis_port) as redis:
        env = server_env(tmp_path)
        env.update(
            REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
            OUTBOX_GRACE_SECONDS="2",
            OUTBOX_RELAY_SECONDS="1",
        )
        with (
            web_server(env, logs_dir / "web.log") as base,
            celery_beat(env, logs_dir / "beat.log"),
        ):
            client = Client(int(base.rsplit(":", 1)[-1]), creator_token)
            status, headers, _ = client.request(
                "POST", "/api/v1/uploads/", **{"Upload-Length": str(len(video))}
            )
            assert status == 201
            location = headers["Location"]
            assert client.patch(location, 0, video[:MIB])[0] == 204
            wait_for(
                lambda: "Sending due task outbox-relay" in (logs_dir / "beat.log").read_text(),
                timeout=30,
                message="beat sent nothing",
            )

            redis.down()
            started = time.monotonic()
            status, headers, body = client.patch(location, MIB, video[MIB:])
            elapsed = time.monotonic() - started
            assert (status, body) == (204, b"")
            assert headers["Upload-Offset"] == str(len(video))
            assert elapsed < 2, f"the last PATCH took {elapsed:.1f}s"

            upload = Upload.objects.get(pk=location.rsplit("/", 1)[-1])
            assert (upload.state, upload.offset) == (UploadState.COMPLETE, len(video))
            waiting = OutboxMessage.objects.get()
            assert (waiting.task, waiting.args) == (
                "apps.uploads.tasks.upload_finalize",
                [str(upload.id)],
            )
            assert "the outbox relay will send it" in (logs_dir / "web.log").read_text()
            # Beat keeps ticking through the outage: its sends fail, it does not die.
            wait_for(
                lambda: (
                    "Couldn't apply scheduled task outbox-relay"
                    in (logs_dir / "beat.log").read_text()
                ),
                timeout=30,
                message="beat never tried to send the relay while Redis was down",
            )

            redis.up()
            back = time.monotonic()
            with celery_worker(env, logs_dir / "worker.log", queues="uploads,default"):
                content = wait_for(
                    lambda: Content.objects.filter(
                        pk=upload.content_id, status=ContentStatus.QUEUED
                    ).first(),
                    timeout=30,
                    message="the upload was not finalised after Redis came back",
                )
                recovered = time.monotonic() - back
                # The web process sends again by itself: the next upload's task leaves with
                # its commit, the outbox empty when the last PATCH answers.
                status, headers, _ = client.request(
                    "POST", "/api/v1/uploads/", **{"Upload-Length": str(len(video))}
                )
                assert client.patch(headers["Location"], 0, video)[0] == 204
                assert not OutboxMessage.objects.exists()
                second = Upload.objects.get(pk=headers["Location"].rsplit("/", 1)[-1])
                wait_for(
                    lambda: Upload.objects.filter(
                        pk=second.pk, state=UploadState.FINALIZED
                    ).exists(),
                    timeout=30,
                    message="the second upload was not finalised",
                )
    assert recovered < 30
    assert content.source_size == len(video)
    assert Upload.objects.get(pk=upload.pk).state == UploadState.FINALIZED
    assert not OutboxMessage.objects.exists()
    assert '"message": "outbox relayed"' in (logs_dir / "worker.log").read_text()


def test_production_relay_timing_keeps_the_promise():
    """Work enqueued while the broker was away is sent within a minute of its return: beat's
    first relay comes at most one period after it, and takes rows past their grace."""
    from streamgate.settings import base

    assert base.CELERY_BEAT_SCHEDULE["outbox-relay"] == {
        "task": "apps.content.tasks.outbox_relay",
        "schedule": base.OUTBOX_RELAY_SECONDS,
    }
    assert base.OUTBOX_GRACE_SECONDS + base.OUTBOX_RELAY_SECONDS <= 30


def test_postgresql_down_while_finalize_hashes(tmp_path, logs_dir, creator_token):  # noqa: F811
    """The worker's database connections are reset while it hashes a large source: the task
    retries the database error with backoff, takes its own claim back and finishes."""
    source = make_padded_video(tmp_path / "big.mp4", total_bytes=320 * MIB)
    length = source.stat().st_size
    db = settings_database()
    with (
        redis_server(logs_dir / "redis.log") as redis_port,
        fault_proxy(db["PORT"]) as postgres,
    ):
        env = server_env(tmp_path)
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        worker_env = {
            **env,
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{postgres.port}/{db['NAME']}",
        }
        with (
            web_server(env, logs_dir / "web.log") as base,
            celery_worker(worker_env, logs_dir / "worker.log", queues="uploads"),
        ):
            client = Client(int(base.rsplit(":", 1)[-1]), creator_token)
            status, headers, _ = client.request(
                "POST", "/api/v1/uploads/", **{"Upload-Length": str(length)}
            )
            assert status == 201
            upload_id = headers["Location"].rsplit("/", 1)[-1]
            with source.open("rb") as body:
                status, _, _ = client.request(
                    "PATCH",
                    headers["Location"],
                    body,
                    **{
                        "Upload-Offset": "0",
                        "Content-Length": str(length),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
            assert status == 204
            # The worker claims the upload, moves the file to its source path, then reads its
            # 320 MiB (about a second): cut its database as soon as the file has moved.
            source_path = Upload.objects.get(pk=upload_id).source_path
            moved = tmp_path / "var" / "media" / source_path
            wait_for(moved.exists, timeout=30, message="the worker never assembled", poll=0.002)
            postgres.down()
            wait_for(
                lambda: "retry: Retry in" in (logs_dir / "worker.log").read_text(),
                timeout=60,
                message="the finalize task did not retry the database error",
            )
            assert Upload.objects.get(pk=upload_id).state == UploadState.FINALIZING
            time.sleep(3)  # PostgreSQL stays away a few seconds, as a restart does
            postgres.up()
            back = time.monotonic()
            upload = wait_for(
                lambda: Upload.objects.filter(pk=upload_id, state=UploadState.FINALIZED).first(),
                timeout=120,
                message="the upload stayed unfinalised after PostgreSQL came back",
            )
            recovered = time.monotonic() - back
    log = (logs_dir / "worker.log").read_text()
    assert recovered < 60, f"finalised {recovered:.0f}s after PostgreSQL came back"
    assert Content.objects.get(pk=upload.content_id).status == ContentStatus.QUEUED
    assert upload.sha256 == sha256_of(source)
    retries = finalize_lines(log, "retry:")
    assert retries, log[-3000:]
    assert all("OperationalError" in line or "InterfaceError" in line for line in retries)
    finished = finalize_lines(log, "succeeded")
    assert len(finished) == 1
    assert "'finalized'" in finished[0]
    # The retries and the success are one task: the retry took its own claim back.
    assert retries[0].split("[")[1].split("]")[0] == finished[0].split("[")[1].split("]")[0]


def finalize_lines(log: str, word: str) -> list[str]:
    """The worker's log lines about upload_finalize tasks that contain ``word``."""
    return [line for line in log.splitlines() if "upload_finalize[" in line and word in line]


def settings_database() -> dict:
    from django.conf import settings

    return settings.DATABASES["default"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()
