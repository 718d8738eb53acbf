"""A web process killed mid-PATCH leaves the upload's write lease behind. Another process on the
same host sees that the holder is dead and takes over at once; a holder it cannot judge
(another host) or that is alive keeps its lease, and callers are told when to come back."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.access.services import api_token_create
from apps.uploads.holder import holder_dead, holder_token
from apps.uploads.lease import lease_wait
from apps.uploads.models import Upload, UploadState
from tests.factories import CreatorFactory
from tests.support.processes import ROOT, free_port, start_web, stop, web_server
from tests.uploads.conftest import upload_of
from tests.uploads.test_live import server_env
from tests.uploads.test_resume_after_drop import Client

MIB = 1024 * 1024


@pytest.fixture
def creator_token(db):
    _, token = api_token_create(user=CreatorFactory())
    return token


def wait_for(condition, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} not met after {timeout} s"
        time.sleep(0.01)
    return found


@pytest.mark.django_db(transaction=True)
def test_a_killed_writer_does_not_lock_its_upload(tmp_path, logs_dir, creator_token):
    """Process A dies (SIGKILL) while it streams a PATCH; process B serves the resume: HEAD
    answers at once with the offset A committed, the PATCH from there is accepted, and the
    file is whole."""
    data = os.urandom(6 * MIB)
    env = server_env(tmp_path, TUS_DISK_COMMIT_BYTES=str(256 * 1024))
    env["TUS_LOCK_SECONDS"] = "15"  # the default: a dead writer's lease outlives many retries
    port_a = free_port()
    writer = start_web(env, logs_dir / "web-a.log", port_a)
    try:
        with web_server(env, logs_dir / "web-b.log") as base_b:
            client_a = Client(port_a, creator_token)
            client_b = Client(int(base_b.rsplit(":", 1)[-1]), creator_token)
            status, headers, _ = client_a.request(
                "POST", "/api/v1/uploads/", **{"Upload-Length": str(len(data))}
            )
            assert status == 201
            path = "/api/v1/uploads/" + headers["Location"].rsplit("/", 1)[-1]
            upload_id = path.rsplit("/", 1)[-1]
            with socket.create_connection(("127.0.0.1", port_a)) as raw:
                raw.sendall(
                    (
                        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {creator_token}\r\nTus-Resumable: 1.0.0\r\n"
                        "Content-Type: application/offset+octet-stream\r\n"
                        f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
                    ).encode()
                )
                raw.sendall(data[: 2 * MIB])
                # A has stored and recorded some of it, and still holds the lease.
                wait_for(
                    lambda: (
                        Upload.objects.filter(pk=upload_id, offset__gt=0)
                        .exclude(lock_token="")
                        .exists()
                    ),
                    what="a committed offset under A's lease",
                )
                os.kill(writer.pid, signal.SIGKILL)
                writer.wait(10)
            held = Upload.objects.get(pk=upload_id)
            assert held.lock_token, "A died holding the lease"
            assert held.lock_expires_at > timezone.now()

            started = time.monotonic()
            status, headers, _ = client_b.request("HEAD", path)
            head_seconds = time.monotonic() - started
            assert status == 200
            offset = int(headers["Upload-Offset"])
            assert 0 < offset <= 2 * MIB
            status, headers, body = client_b.patch(path, offset, data[offset:])
            patch_seconds = time.monotonic() - started - head_seconds
            assert status == 204, (status, dict(headers), body)
            assert int(headers["Upload-Offset"]) == len(data)
            # No waiting for the dead writer's lease (15 s) nor for TUS_LOCK_WAIT_SECONDS (3 s).
            assert head_seconds < 1.5, head_seconds
            assert patch_seconds < 5, patch_seconds
    finally:
        stop(writer)
    upload = Upload.objects.get(pk=upload_id)
    assert upload.offset == len(data)
    assert upload.state != UploadState.RECEIVING
    stored = (tmp_path / "var" / "media" / upload.incoming_path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert "lease of a dead writer freed" in (logs_dir / "web-b.log").read_text()


def token_of_a_process_that_exited() -> str:
    """A lease token named by another process of this host, which has exited since."""
    code = "from apps.uploads.holder import holder_token; print(holder_token())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_holders_are_judged_only_when_known_dead():
    mine = holder_token()
    assert len(mine) == 32
    assert mine.startswith("h")
    assert holder_dead(mine) is False  # this very process: alive
    assert holder_dead(token_of_a_process_that_exited()) is True
    # Our pid, another start time: the pid was reused, the holder is gone.
    reused = mine[:-8] + ("0" * 7 + "1" if mine[-8:] != "00000001" else "00000002")
    assert holder_dead(reused) is True
    # Another host (or container): never presumed dead, whatever its pid.
    elsewhere = mine[:9] + ("0" * 10 if mine[9:19] != "0" * 10 else "1" * 10) + mine[19:]
    assert holder_dead(elsewhere) is False
    assert holder_dead("0123456789abcdef0123456789abcdef") is False  # names no holder
    assert holder_dead("") is False


def lease_upload(tus, token: str, seconds: float = 10) -> tuple[str, Upload]:
    location = tus.create(1000)["Location"]
    upload = upload_of(location)
    Upload.objects.filter(pk=upload.pk).update(
        lock_token=token, lock_expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    return location, upload


@pytest.fixture
def tus(tus_for, creator):
    return tus_for(creator)


def test_a_dead_local_holders_lease_is_freed_at_once(tus, settings):
    settings.TUS_LOCK_WAIT_SECONDS = 2
    location, upload = lease_upload(tus, token_of_a_process_that_exited())
    started = time.monotonic()
    response = tus.patch(location, 0, b"x" * 100)
    assert time.monotonic() - started < 1
    assert response.status_code == 204
    assert response["Upload-Offset"] == "100"
    assert Upload.objects.get(pk=upload.pk).lock_token == ""


@pytest.mark.parametrize("holder", ["live", "elsewhere"])
def test_a_live_or_remote_holder_keeps_its_lease(tus, settings, holder):
    """Never steal a lease that may still be written to: a live process of this host, or a
    process of another host (whose pid means nothing here). The caller is told when the lease
    would run out."""
    settings.TUS_LOCK_WAIT_SECONDS = 0.2
    token = holder_token()
    if holder == "elsewhere":
        token = token[:9] + ("0" * 10 if token[9:19] != "0" * 10 else "1" * 10) + "zzzzz" + "1" * 8
    location, upload = lease_upload(tus, token)
    assert lease_wait(upload) is False
    response = tus.patch(location, 0, b"x" * 100)
    assert response.status_code == 409
    assert response.json()["reason"] == "locked"
    assert 8 <= int(response["Retry-After"]) <= 10
    assert Upload.objects.get(pk=upload.pk).lock_token == token
