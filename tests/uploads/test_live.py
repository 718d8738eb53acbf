"""A real third-party tus client (tuspy) against a real server process and Celery worker."""

import contextlib
import hashlib
import json
import signal
import socket
import threading
import time
from contextlib import ExitStack, contextmanager

import pytest
from django.conf import settings as django_settings
from tusclient import client as tus_client
from websockets.sync.client import connect

from apps.access.services import api_token_create
from apps.content.models import Content, ContentStatus
from apps.uploads.models import Upload, UploadState
from tests.factories import CreatorFactory
from tests.support.media import make_padded_video
from tests.support.processes import (
    celery_worker,
    embedded_env,
    free_port,
    start_web,
    stop,
    web_server,
)

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def server_env(tmp_path, s3=None, **extra: str) -> dict[str, str]:
    """The test database and Redis, media on disk under tmp_path or in the given S3 bucket."""
    db = django_settings.DATABASES["default"]
    env = embedded_env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        TUS_LOCK_SECONDS="3",
        **extra,
    )
    if s3:
        env.update(
            S3_ENDPOINT_URL=s3["endpoint_url"],
            S3_BUCKET=s3["bucket_name"],
            S3_ACCESS_KEY="test",
            S3_SECRET_KEY="test",
        )
    return env


@contextmanager
def stack(env, logs, port=None):
    with ExitStack() as stack:
        base = stack.enter_context(web_server(env, logs / "web.log", port=port))
        stack.enter_context(celery_worker(env, logs / "worker.log", queues="uploads"))
        yield base


def wait_for_status(content_id, wanted, timeout=60) -> Content:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = Content.objects.get(pk=content_id)
        if content.status in wanted:
            return content
        time.sleep(0.2)
    raise AssertionError(f"content stayed {content.status}")


@pytest.fixture
def creator_token():
    user = CreatorFactory()
    _, token = api_token_create(user=user)
    return token


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = make_padded_video(tmp_path_factory.mktemp("live") / "trip.mp4", total_bytes=7 * MIB)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def uploader_for(base, token, path, url=None, chunk=512 * 1024):
    client = tus_client.TusClient(
        f"{base}/api/v1/uploads/", headers={"Authorization": f"Bearer {token}"}
    )
    return client.uploader(
        file_path=str(path),
        url=url,
        chunk_size=chunk,
        retries=5,
        retry_delay=1,
        metadata={"filename": path.name, "title": "Trip"},
    )


@pytest.mark.parametrize("backend", ["disk", "s3"])
def test_tuspy_uploads_a_video(backend, tmp_path, logs_dir, creator_token, video, request):
    path, sha = video
    s3 = None
    if backend == "s3":
        bucket = request.getfixturevalue("s3_storage")
        s3 = django_settings.STORAGES["default"]["OPTIONS"]
        assert s3["bucket_name"] == bucket.name
    with stack(server_env(tmp_path, s3), logs_dir) as base:
        uploader = uploader_for(base, creator_token, path, chunk=3 * MIB)
        uploader.upload()
        upload = Upload.objects.get(pk=uploader.url.rsplit("/", 1)[-1])
        content = wait_for_status(upload.content_id, {ContentStatus.QUEUED, ContentStatus.FAILED})
    assert content.status == ContentStatus.QUEUED, content.error
    assert content.source_sha256 == sha
    assert content.title == "Trip"
    if backend == "disk":
        stored = (tmp_path / "var" / "media" / content.source_path).read_bytes()
    else:
        stored = bucket.Object(content.source_path).get()["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == sha


def test_resume_after_the_server_is_killed(tmp_path, logs_dir, creator_token, video):
    """Part of the file goes up; the server is SIGKILLed, once between requests and once in
    the middle of one; a new client resumes from HEAD's offset after each restart."""
    path, sha = video
    env = server_env(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    web = start_web(env, logs_dir / "web-1.log", port)
    first = uploader_for(base, creator_token, path, chunk=MIB)
    for _ in range(3):
        first.upload_chunk()
    url = first.url
    stop(web, sig=signal.SIGKILL)

    web = start_web(env, logs_dir / "web-2.log", port)
    second = uploader_for(base, creator_token, path, url=url, chunk=3 * MIB)
    assert second.offset == 3 * MIB  # everything acknowledged before the kill is there
    sending = threading.Thread(target=_quietly, args=(second.upload_chunk,))
    sending.start()
    time.sleep(0.05)
    stop(web, sig=signal.SIGKILL)  # most likely while the 3 MiB PATCH is on the wire
    sending.join(30)

    with stack(env, logs_dir, port=port):
        third = uploader_for(base, creator_token, path, url=url, chunk=MIB)
        assert third.offset in (3 * MIB, 6 * MIB)
        third.upload()
        upload = Upload.objects.get(pk=url.rsplit("/", 1)[-1])
        content = wait_for_status(upload.content_id, {ContentStatus.QUEUED, ContentStatus.FAILED})
    assert content.status == ContentStatus.QUEUED, content.error
    assert content.source_sha256 == sha
    assert Upload.objects.get(pk=upload.pk).state == UploadState.FINALIZED


def _quietly(call) -> None:
    """Run a client call that is expected to fail because its server is killed under it."""
    with contextlib.suppress(Exception):  # the connection dies with the server, on purpose
        call()


def test_websocket_follows_the_upload(tmp_path, logs_dir, creator_token, video):
    path, _ = video
    with stack(server_env(tmp_path), logs_dir) as base:
        uploader = uploader_for(base, creator_token, path, chunk=MIB)
        uploader.set_url(uploader.create_url())  # tuspy creates lazily; we need the id first
        content_id = Upload.objects.get(pk=uploader.url.rsplit("/", 1)[-1]).content_id
        ws_url = base.replace("http", "ws") + f"/ws/contents/{content_id}/"
        messages = []
        with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {creator_token}"}, open_timeout=10
        ) as websocket:
            messages.append(json.loads(websocket.recv(timeout=10)))
            sender = threading.Thread(target=uploader.upload)
            sender.start()
            while not (messages[-1]["type"] == "status" and messages[-1]["status"] == "queued"):
                messages.append(json.loads(websocket.recv(timeout=30)))
            sender.join(30)
    assert messages[0].items() >= {"type": "status", "status": "uploading", "error": None}.items()
    progress = [m for m in messages if m["type"] == "upload"]
    assert progress, messages
    assert all(m["total"] == path.stat().st_size for m in progress)
    received = [m["received"] for m in progress]
    assert received == sorted(received)
    assert received[-1] == path.stat().st_size
    assert messages[-1].items() >= {"type": "status", "status": "queued", "error": None}.items()


def test_a_patch_cut_off_midway_keeps_what_arrived(tmp_path, logs_dir, creator_token, video):
    """tus-js-client and Uppy send a whole file in one PATCH by default: when the connection
    drops, the bytes that reached the server must stay, and the resume sends only the rest."""
    path, sha = video
    data = path.read_bytes()
    with stack(server_env(tmp_path), logs_dir) as base:
        uploader = uploader_for(base, creator_token, path)
        uploader.set_url(uploader.create_url())
        upload_path = "/api/v1/uploads/" + uploader.url.rsplit("/", 1)[-1]
        port = int(base.rsplit(":", 1)[-1])
        sent = 5 * MIB
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                (
                    f"PATCH {upload_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {creator_token}\r\nTus-Resumable: 1.0.0\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
                ).encode()
            )
            raw.sendall(data[:sent])
            time.sleep(1)  # let the server write what it has read
        # The socket is closed mid-body: the server keeps what it stored.
        upload = Upload.objects.get(pk=upload_path.rsplit("/", 1)[-1])
        deadline = time.monotonic() + 10
        while upload.lock_token and time.monotonic() < deadline:
            time.sleep(0.1)
            upload.refresh_from_db()
        assert 4 * MIB <= upload.offset <= sent
        incoming = tmp_path / "var" / "media" / upload.incoming_path
        assert incoming.read_bytes()[: upload.offset] == data[: upload.offset]

        resumed = uploader_for(base, creator_token, path, url=uploader.url, chunk=64 * MIB)
        assert resumed.offset == upload.offset
        resumed.upload()
        content = wait_for_status(upload.content_id, {ContentStatus.QUEUED, ContentStatus.FAILED})
    assert content.status == ContentStatus.QUEUED, content.error
    assert content.source_sha256 == sha


def test_a_client_that_goes_silent_is_cut_off_and_its_bytes_kept(
    tmp_path, logs_dir, creator_token, video
):
    """A dead mobile link keeps its TCP connection open: after the idle timeout the server
    keeps what arrived and frees the upload for the client's next attempt."""
    path, sha = video
    data = path.read_bytes()
    env = server_env(tmp_path, STREAMING_BODY_IDLE_TIMEOUT="1")
    with stack(env, logs_dir) as base:
        uploader = uploader_for(base, creator_token, path)
        uploader.set_url(uploader.create_url())
        upload_id = uploader.url.rsplit("/", 1)[-1]
        port = int(base.rsplit(":", 1)[-1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                (
                    f"PATCH /api/v1/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {creator_token}\r\nTus-Resumable: 1.0.0\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
                ).encode()
            )
            raw.sendall(data[: 2 * MIB])
            time.sleep(3)  # silent, connection open
            upload = Upload.objects.get(pk=upload_id)
            assert upload.lock_token == ""  # the request ended; nobody holds the upload
            assert MIB <= upload.offset <= 2 * MIB
        resumed = uploader_for(base, creator_token, path, url=uploader.url, chunk=64 * MIB)
        assert resumed.offset == upload.offset
        resumed.upload()
        content = wait_for_status(upload.content_id, {ContentStatus.QUEUED, ContentStatus.FAILED})
    assert content.source_sha256 == sha
