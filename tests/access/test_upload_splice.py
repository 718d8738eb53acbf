"""Large tus PATCH bodies bound for disk, moved from the client's socket to the file by the
kernel (streamgate/streaming.py SocketBody, detached through streamgate/http_protocol.py), under
a real uvicorn started as `make run` starts it: the bytes stored are the body's, the offset
commits, the lease, the early ends (a client that leaves or goes quiet, a drain, a full disk:
tests/uploads/test_disk_faults.py, tests/streamgate/test_graceful_shutdown.py) behave as for a
body read through Python; a checksum, a small body or S3 keeps the body in Python. A spliced
answer closes the connection (the HTTP parser never saw the rest of the body): that is how the
client, and these tests, can tell."""

import base64
import errno
import hashlib
import os
import socket
import threading
import time

import pytest
from django.utils import timezone

from apps.access.services import api_token_create
from apps.uploads.models import Upload, UploadState
from streamgate import shutdown
from streamgate.streaming import SocketBody
from tests.factories import CreatorFactory
from tests.support.processes import free_port, start_web, stop
from tests.uploads.test_resume_after_drop import Client

MIB = 1024 * 1024


@pytest.fixture
def token(db) -> str:
    return api_token_create(user=CreatorFactory())[1]


@pytest.fixture
def web(tmp_path):
    """A real web server on the test database; yields (port, media folder)."""
    from tests.uploads.test_live import server_env

    def start(**extra: str):
        port = free_port()
        started.append(start_web(server_env(tmp_path, **extra), tmp_path / "web.log", port))
        return port

    started: list = []
    yield start
    for process in started:
        stop(process)


def create(client: Client, length: int) -> str:
    status, headers, body = client.request(
        "POST", "/api/v1/uploads/", **{"Upload-Length": str(length)}
    )
    assert status == 201, body
    return "/api/v1/uploads/" + headers["Location"].rsplit("/", 1)[-1]


def upload_of(path: str) -> Upload:
    return Upload.objects.get(pk=path.rsplit("/", 1)[-1])


def stored(tmp_path, path: str) -> bytes:
    return (tmp_path / "var" / "media" / upload_of(path).incoming_path).read_bytes()


def head(path: str, token: str, length: int) -> bytes:
    return (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def answer_of(raw: socket.socket, timeout: float) -> bytes:
    raw.settimeout(timeout)
    answer = b""
    while chunk := raw.recv(65536):
        answer += chunk
    return answer


def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_large_patch_is_spliced_and_stored_byte_for_byte(tmp_path, web, token):
    client = Client(web(), token)
    data = os.urandom(12 * MIB + 4321)
    path = create(client, len(data))
    cut = 7 * MIB + 17  # odd sizes: the pipe's 1 MiB steps do not line up with the body
    status, headers, body = client.patch(path, 0, data[:cut])
    assert status == 204, body
    assert headers["Connection"] == "close"  # spliced
    assert int(headers["Upload-Offset"]) == cut
    assert upload_of(path).offset == cut
    assert upload_of(path).lock_token == ""  # the lease given back with the last commit

    small = data[cut : cut + MIB // 2]  # under TUS_SPLICE_MIN_BYTES: read through Python
    status, headers, body = client.patch(path, cut, small)
    assert status == 204, body
    assert headers["Connection"] is None
    offset = cut + len(small)
    status, headers, body = client.patch(path, offset, data[offset:])
    assert status == 204, body
    assert int(headers["Upload-Offset"]) == len(data)
    upload = upload_of(path)
    assert upload.state != UploadState.RECEIVING
    source = tmp_path / "var" / "media" / upload.source_path
    incoming = tmp_path / "var" / "media" / upload.incoming_path
    kept = source.read_bytes() if source.exists() else incoming.read_bytes()
    assert hashlib.sha256(kept).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_a_checksum_keeps_the_body_in_python_and_is_checked(tmp_path, web, token):
    client = Client(web(), token)
    data = os.urandom(3 * MIB)
    path = create(client, len(data))
    wrong = hashlib.sha256(b"other").digest()
    status, _, _ = client.request(
        "PATCH",
        path,
        data,
        **{
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha256 " + base64.b64encode(wrong).decode(),
        },
    )
    assert status == 460
    right = base64.b64encode(hashlib.sha256(data).digest()).decode()
    status, headers, body = client.request(
        "PATCH",
        path,
        data,
        **{
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"sha256 {right}",
        },
    )
    assert status == 204, body
    assert headers["Connection"] is None  # read through Python, hashed as it came
    assert stored(tmp_path, path) == data


@pytest.mark.django_db(transaction=True)
def test_a_client_that_expects_100_continue_gets_it_then_sends(tmp_path, web, token):
    port = web()
    data = os.urandom(3 * MIB)
    path = create(Client(port, token), len(data))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(
            head(path, token, len(data)).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        )
        assert raw.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n")
        raw.sendall(data)
        answer = answer_of(raw, timeout=10)
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    assert b"connection: close\r\n" in answer.lower()
    assert stored(tmp_path, path) == data


@pytest.mark.django_db(transaction=True)
def test_a_client_gone_mid_body_keeps_what_arrived(tmp_path, web, token):
    port = web()
    data = os.urandom(8 * MIB)
    path = create(Client(port, token), len(data))
    incoming = tmp_path / "var" / "media" / upload_of(path).incoming_path
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(head(path, token, len(data)) + data[: 3 * MIB])
        wait_for(lambda: incoming.stat().st_size >= 3 * MIB, 20, "3 MiB on disk")
    wait_for(lambda: upload_of(path).lock_token == "", 10, "the lease given back")
    upload = upload_of(path)
    assert upload.offset == 3 * MIB
    assert stored(tmp_path, path) == data[: 3 * MIB]
    status, headers, body = Client(port, token).patch(path, 3 * MIB, data[3 * MIB :])
    assert status == 204, body
    assert stored(tmp_path, path) == data


@pytest.mark.django_db(transaction=True)
def test_a_quiet_client_is_answered_with_what_arrived(tmp_path, web, token):
    port = web(STREAMING_BODY_IDLE_TIMEOUT="1")
    data = os.urandom(6 * MIB)
    path = create(Client(port, token), len(data))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(head(path, token, len(data)) + data[: 2 * MIB])
        started = time.monotonic()
        answer = answer_of(raw, timeout=10)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    assert f"upload-offset: {2 * MIB}\r\n".encode() in answer.lower()
    assert b"connection: close\r\n" in answer.lower()
    assert 0.9 < waited < 5, waited
    assert stored(tmp_path, path) == data[: 2 * MIB]


@pytest.mark.django_db(transaction=True)
def test_a_slow_body_keeps_its_lease_past_the_lease_time(tmp_path, web, token):
    """TUS_LOCK_SECONDS is 3 (server_env): a body that pauses 4.5 s keeps the upload."""
    port = web()
    data = os.urandom(4 * MIB)
    path = create(Client(port, token), len(data))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(head(path, token, len(data)) + data[: 2 * MIB])
        wait_for(lambda: upload_of(path).lock_token != "", 10, "the lease taken")
        held = upload_of(path).lock_token
        time.sleep(4.5)
        upload = upload_of(path)
        assert upload.lock_token == held
        assert upload.lock_expires_at > timezone.now()  # renewed while the client paused
        raw.sendall(data[2 * MIB :])
        answer = answer_of(raw, timeout=20)
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    assert f"upload-offset: {len(data)}\r\n".encode() in answer.lower()


def test_socket_body_moves_what_it_is_asked_and_sees_the_end(tmp_path):
    ours, theirs = socket.socketpair()
    ours.setblocking(False)  # as the server's sockets are
    data = os.urandom(3 * MIB)
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()))
    sender.start()
    body = SocketBody("/test")
    body.fd, body.remaining = os.dup(ours.fileno()), 4 * MIB  # a body longer than what is sent
    target = tmp_path / "file"
    with target.open("wb") as out:
        while body.moved < MIB + 5:  # a call moves at most a step, or waits a moment
            body.splice_to(out.fileno(), MIB + 5 - body.moved)
        assert body.moved == MIB + 5
        while not body.ended:
            body.splice_to(out.fileno(), 4 * MIB)
    sender.join()
    body.close()
    ours.close()
    assert body.disconnected
    assert not body.timed_out
    assert body.moved == len(data)
    assert body.remaining == MIB
    assert target.read_bytes() == data


def test_socket_body_ends_at_a_drain(monkeypatch, tmp_path):
    monkeypatch.setattr(shutdown, "_draining", threading.Event())
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.sendall(b"x" * 1000)
    body = SocketBody("/test")
    body.fd, body.remaining = os.dup(ours.fileno()), MIB
    with (tmp_path / "file").open("wb") as out:
        body.splice_to(out.fileno(), MIB)  # takes what is there, then waits a moment
        assert body.moved == 1000
        assert not body.ended
        shutdown.drain()
        body.splice_to(out.fileno(), MIB)
    assert body.cut_short
    body.close()
    ours.close()
    theirs.close()


def test_socket_body_counts_only_what_reached_the_file(tmp_path):
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.sendall(b"y" * 5000)
    body = SocketBody("/test")
    body.fd, body.remaining = os.dup(ours.fileno()), 5000
    target = tmp_path / "file"
    target.write_bytes(b"")
    read_only = os.open(target, os.O_RDONLY)  # a write that fails, as a broken disk's would
    try:
        with pytest.raises(OSError, match="Bad file descriptor"):
            body.splice_to(read_only, 5000)
    finally:
        os.close(read_only)
    assert body.moved == 0
    body.close()
    ours.close()
    theirs.close()


def test_after_a_failed_write_the_rest_is_discarded_without_hanging(tmp_path, monkeypatch):
    """The failed write left up to a pipe's worth of bytes in the pipe: discard() starts a new
    pipe, so its splices from the socket never wait for room that nobody will make. A
    one-page pipe is full after any splice (as a pipe of 1,500-byte packets fills on a real
    network)."""
    monkeypatch.setattr(SocketBody, "PIPE_BYTES", 4096)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    data = os.urandom(3 * MIB)
    sender = threading.Thread(target=lambda: theirs.sendall(data), daemon=True)
    sender.start()
    body = SocketBody("/test")
    body.fd, body.remaining = os.dup(ours.fileno()), len(data)
    target = tmp_path / "file"
    target.write_bytes(b"")
    read_only = os.open(target, os.O_RDONLY)
    failed = None
    try:
        while failed is None:  # until bytes arrived and their write failed
            try:
                body.splice_to(read_only, MIB)
            except OSError as error:
                failed = error
    finally:
        os.close(read_only)
    assert failed.errno == errno.EBADF
    assert body.remaining < len(data)
    assert body.moved == 0
    discarding = threading.Thread(target=body.discard, daemon=True)
    discarding.start()
    discarding.join(10)
    assert not discarding.is_alive(), "discard() hung on a full pipe"
    sender.join(10)
    assert body.remaining == 0
    assert not body.ended
    body.close()
    ours.close()
    theirs.close()


def test_a_file_that_cannot_take_a_splice_gets_the_bytes_written(tmp_path):
    """splice(2) into a file opened to append is EINVAL, as on a file system without it."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    data = os.urandom(2 * MIB + 3)
    sender = threading.Thread(target=lambda: theirs.sendall(data), daemon=True)
    sender.start()
    body = SocketBody("/test")
    body.fd, body.remaining = os.dup(ours.fileno()), len(data)
    target = tmp_path / "file"
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while body.remaining and not body.ended:
            body.splice_to(out, MIB)
    finally:
        os.close(out)
    sender.join(10)
    body.close()
    ours.close()
    theirs.close()
    assert body.moved == len(data)
    assert target.read_bytes() == data


def test_urgent_data_ends_the_body_instead_of_spinning(tmp_path):
    """After out-of-band data, splice finds nothing while poll says readable, forever."""
    ours, theirs = socket.socket(), socket.socket()
    listener = socket.create_server(("127.0.0.1", 0))
    theirs.connect(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    ours.setblocking(False)
    theirs.sendall(b"a" * 1000)
    theirs.send(b"!", socket.MSG_OOB)
    theirs.sendall(b"b" * 1000)
    body = SocketBody("/test")
    body.idle_timeout = 30
    body.fd, body.remaining = os.dup(ours.fileno()), MIB
    started = time.monotonic()
    with (tmp_path / "file").open("wb") as out:
        while body.remaining and not body.ended:
            body.splice_to(out.fileno(), MIB)
    assert time.monotonic() - started < 5
    assert body.disconnected
    assert not body.timed_out
    body.close()
    ours.close()
    theirs.close()
