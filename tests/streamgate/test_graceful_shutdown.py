"""SIGTERM, as an orchestrator sends it on a rollout or a scale-down, to the web server and to a
transcode worker, each started as the Procfile starts it.

The web server stops reading an upload's body at the next chunk, commits the bytes it stored,
answers, and exits within its grace period; a new server resumes the upload from that offset.
A worker stops its encode at once, puts the job and its message back in the queue, publishes
nothing, and exits; another worker encodes the video from the start.
"""

import hashlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import m3u8
import pytest
from kombu import Connection

from apps.access.services import api_token_create
from apps.content.models import Content, ContentStatus
from apps.transcode.models import JobState, TranscodeJob
from apps.uploads.models import Upload
from streamgate.celery import app
from tests.factories import ContentFactory, CreatorFactory
from tests.support.media import make_video
from tests.support.processes import (
    BIN,
    alive,
    free_port,
    spawned,
    wait_for_log,
    wait_for_port,
    web_server,
)
from tests.transcode.conftest import store_source
from tests.transcode.test_broker_outage import procfile_command
from tests.transcode.test_live import encoder_of, wait_for, worker_env
from tests.uploads.test_live import server_env
from tests.uploads.test_resume_after_drop import Client

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def procfile_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PATH": f"{BIN}:{env['PATH']}"}


def graceful_seconds() -> int:
    """The web line's --timeout-graceful-shutdown: what uvicorn grants requests on SIGTERM."""
    words = procfile_command("web").split()
    assert "--timeout-graceful-shutdown" in words, "the web server would wait forever"
    return int(words[words.index("--timeout-graceful-shutdown") + 1])


class SlowSender(threading.Thread):
    """Streams the rest of a PATCH body in small pieces, as a slow link does, until the server
    closes the connection or ``seconds`` pass (bounded: it stops by itself)."""

    def __init__(self, raw: socket.socket, data: bytes, *, seconds: float) -> None:
        super().__init__(daemon=True)
        self.raw, self.data, self.seconds = raw, data, seconds
        self.sent = 0
        self.error: OSError | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        piece = 16 * 1024
        try:
            while self.sent < len(self.data) and time.monotonic() < deadline:
                self.raw.sendall(self.data[self.sent : self.sent + piece])
                self.sent += piece
                time.sleep(0.05)
        except OSError as error:  # the server answered and closed, or reset the connection
            self.error = error


def read_response(raw: socket.socket, timeout: float) -> bytes:
    """What the server answered on ``raw`` before it closed (nothing if it reset first)."""
    raw.settimeout(timeout)
    answer = b""
    try:
        while chunk := raw.recv(65536):
            answer += chunk
    except OSError:
        pass
    return answer


def test_sigterm_to_web_commits_an_inflight_patch_and_the_upload_resumes(tmp_path, logs_dir):
    grace = graceful_seconds()
    # No periodic commits: what the server commits, it commits because it was told to stop.
    env = server_env(tmp_path, TUS_DISK_COMMIT_BYTES=str(1 << 30), TUS_DISK_COMMIT_SECONDS="3600")
    _, token = api_token_create(user=CreatorFactory())
    data = os.urandom(8 * MIB)
    first = MIB  # sent before SIGTERM: the server stores it, then waits for more
    port = free_port()
    log = logs_dir / "web-a.log"
    command = procfile_command("web")
    with spawned(
        ["bash", "-c", f"exec {command}"],
        env=procfile_env({**env, "HOST": "127.0.0.1", "WEB_PORT": str(port)}),
        log=log,
    ) as web:
        wait_for_port(port, timeout=30, process=web, log=log)
        client = Client(port, token)
        status, headers, _ = client.request(
            "POST", "/api/v1/uploads/", **{"Upload-Length": str(len(data))}
        )
        assert status == 201
        path = "/api/v1/uploads/" + headers["Location"].rsplit("/", 1)[-1]
        upload = Upload.objects.get(pk=path.rsplit("/", 1)[-1])
        incoming = tmp_path / "var" / "media" / upload.incoming_path
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                (
                    f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
                ).encode()
            )
            raw.sendall(data[:first])
            wait_for(lambda: incoming.stat().st_size >= first, 20, "the first MiB on disk")
            assert Upload.objects.get(pk=upload.pk).offset == 0  # stored, not yet committed
            sender = SlowSender(raw, data[first:], seconds=grace + 10)
            sender.start()
            time.sleep(0.3)  # the client is mid-body, sending
            signalled = time.monotonic()
            os.kill(web.pid, signal.SIGTERM)
            answer = read_response(raw, timeout=grace + 10)
            web.wait(grace + 10)
            exit_seconds = time.monotonic() - signalled
            sender.join(grace + 15)
        sent = first + sender.sent

    # Out well before the grace period ran out: nothing waited for the client's body.
    assert exit_seconds < min(5, grace), exit_seconds
    stopped = Upload.objects.get(pk=upload.pk)
    assert stopped.lock_token == "", "the lease was released, not left to run out"
    committed = stopped.offset
    on_disk = incoming.read_bytes()
    # Every byte stored is committed, and they are the body's first bytes.
    assert first <= committed <= sent, (committed, sent)
    assert len(on_disk) == committed
    assert on_disk == data[:committed]
    if answer:  # or the connection was reset before the client read it: it asks HEAD
        assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
        assert f"upload-offset: {committed}\r\n".encode() in answer.lower()
    assert "upload body cut short by shutdown" in log.read_text()

    with web_server(env, logs_dir / "web-b.log") as base:
        client = Client(int(base.rsplit(":", 1)[-1]), token)
        status, headers, _ = client.request("HEAD", path)
        assert status == 200
        assert int(headers["Upload-Offset"]) == committed
        status, headers, body = client.patch(path, committed, data[committed:])
        assert status == 204, (status, body)
        assert int(headers["Upload-Offset"]) == len(data)
    stored = (tmp_path / "var" / "media" / upload.incoming_path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


def procfile_worker(env: dict[str, str], log: Path):
    """The Procfile's worker line (prefork), one pool process."""
    return spawned(
        ["bash", "-c", f"exec {procfile_command('worker')}"],
        env=procfile_env({**env, "WORKER_CONCURRENCY": "1"}),
        log=log,
    )


def queued_messages(queue: str, job_id) -> int:
    """Messages in ``queue`` for the job ``job_id`` (others, of earlier tests' workers killed
    mid-task, may come back to the queue meanwhile)."""
    with Connection(app.conf.broker_url) as connection:
        entries = connection.default_channel.client.lrange(queue, 0, -1)
    return sum(str(job_id).encode() in entry for entry in entries)


def test_sigterm_to_a_worker_mid_encode_requeues_the_job_for_another(
    tmp_path, logs_dir, media_root
):
    clip = make_video(tmp_path / "clip.mp4", seconds=16, size="640x360", rate=30)
    env = worker_env(tmp_path)
    # Stored and finalised here (the Procfile's worker consumes the uploads queue too); the
    # finalisation queues the transcode.
    content = store_source(ContentFactory(), clip)
    log_a = logs_dir / "worker-a.log"
    with procfile_worker(env, log_a) as worker_a:
        job = wait_for(
            lambda: TranscodeJob.objects.filter(content=content, state=JobState.RUNNING).first(),
            60,
            "the job to run",
        )
        ffmpeg_pid = wait_for(lambda: encoder_of(job), 60, "FFmpeg to start")
        signalled = time.monotonic()
        os.kill(worker_a.pid, signal.SIGTERM)
        worker_a.wait(20)
        exit_seconds = time.monotonic() - signalled
    assert exit_seconds < 10, exit_seconds
    assert not alive(ffmpeg_pid)
    assert "transcode stopped for the worker's shutdown" in log_a.read_text()

    # Back in the queue, nothing published, nothing left running.
    content.refresh_from_db()
    assert content.status == ContentStatus.QUEUED, (content.status, content.error)
    assert content.published_job_id is None
    job.refresh_from_db()
    assert (job.state, job.worker) == (JobState.QUEUED, "")
    assert "shut down" in job.interruption
    assert queued_messages("transcode", job.id) == 1
    outputs = media_root / "renditions" / str(content.id)
    assert not outputs.exists() or not any(p.is_file() for p in outputs.rglob("*"))

    log_b = logs_dir / "worker-b.log"
    with procfile_worker(env, log_b) as worker_b:
        wait_for_log("ready.", timeout=60, process=worker_b, log=log_b)
        done = wait_for(
            lambda: Content.objects.filter(
                pk=content.pk, status__in=(ContentStatus.READY, ContentStatus.FAILED)
            ).first(),
            120,
            "the content to be ready",
        )
    assert done.status == ContentStatus.READY, done.error
    # The same job, encoded once more from the start, is the one published.
    assert list(TranscodeJob.objects.filter(content=content).values_list("id", "state")) == [
        (job.id, JobState.SUCCEEDED)
    ]
    assert done.published_job_id == job.id
    folder = media_root / done.published_job.output_prefix
    master = m3u8.load(str(folder / "master.m3u8"))
    assert master.playlists
    for variant in master.playlists:
        media = m3u8.load(str(folder / variant.uri))
        assert media.segments
        assert all((folder / segment.uri).is_file() for segment in media.segments)
        assert media.is_endlist
    assert (folder / "manifest.mpd").is_file()
