"""A client whose PATCH connection drops resumes at once: HEAD and the next PATCH, sent while the
server is still storing the cut-off request's bytes, wait for it and see the true offset
(tusd's locker does the same). Real uvicorn, real sockets, a real tus client."""

import hashlib
import http.client
import os
import socket
import time

import pytest

from apps.access.services import api_token_create
from apps.uploads.models import Upload, UploadState
from tests.factories import CreatorFactory
from tests.support.cutting_proxy import cutting_proxy
from tests.support.processes import web_server
from tests.uploads.test_live import server_env, uploader_for

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
CUT_AFTER = 1_500_000  # body bytes sent before the connection drops


@pytest.fixture
def creator_token():
    _, token = api_token_create(user=CreatorFactory())
    return token


class Client:
    """Plain HTTP/1.1 requests, a new connection each (as a client after a drop opens one)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}

    def request(self, method: str, path: str, body: bytes = b"", **headers: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers={**self.headers, **headers})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def patch(self, path: str, offset: int, body: bytes):
        return self.request(
            "PATCH",
            path,
            body,
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        )


def wait_until_writing(upload_id: str) -> None:
    """Until the server's PATCH holds the write lease, i.e. is reading the body we send: then
    a drop cuts a request the server is busy with (not one it has not started yet)."""
    deadline = time.monotonic() + 10
    while not Upload.objects.filter(pk=upload_id).exclude(lock_token="").exists():
        assert time.monotonic() < deadline, "the server never started writing"
        time.sleep(0.002)


def stored_sha256(tmp_path, upload: Upload) -> str:
    return hashlib.sha256(
        (tmp_path / "var" / "media" / upload.incoming_path).read_bytes()
    ).hexdigest()


def test_head_and_patch_right_after_a_drop_see_the_true_offset(tmp_path, logs_dir, creator_token):
    rounds, piece = 8, 64 * 1024
    data = os.urandom(rounds * (CUT_AFTER + piece) + MIB)
    with web_server(server_env(tmp_path), logs_dir / "web.log") as base:
        client = Client(int(base.rsplit(":", 1)[-1]), creator_token)
        status, headers, _ = client.request(
            "POST", "/api/v1/uploads/", **{"Upload-Length": str(len(data))}
        )
        assert status == 201
        path = "/api/v1/uploads/" + headers["Location"].rsplit("/", 1)[-1]
        upload_id = path.rsplit("/", 1)[-1]
        offset, kept = 0, []
        for _ in range(rounds):
            with socket.create_connection(("127.0.0.1", client.port)) as raw:
                raw.sendall(
                    (
                        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {creator_token}\r\nTus-Resumable: 1.0.0\r\n"
                        "Content-Type: application/offset+octet-stream\r\n"
                        f"Upload-Offset: {offset}\r\nContent-Length: {len(data) - offset}\r\n\r\n"
                    ).encode()
                )
                raw.sendall(data[offset : offset + CUT_AFTER])
                wait_until_writing(upload_id)
            # The connection is gone mid-body; the client asks where to resume, at once.
            status, headers, _ = client.request("HEAD", path)
            assert status == 200
            told = int(headers["Upload-Offset"])
            status, headers, body = client.patch(path, told, data[told : told + piece])
            assert status == 204, (told, offset, body)
            assert int(headers["Upload-Offset"]) == told + piece
            kept.append(told - offset)
            offset = told + piece
        status, headers, body = client.patch(path, offset, data[offset:])
        assert status == 204, body
    upload = Upload.objects.get(pk=upload_id)
    assert upload.offset == len(data)
    assert upload.state in (UploadState.COMPLETE, UploadState.FINALIZING, UploadState.FINALIZED)
    # The drops were real: each kept most of what it sent, which HEAD reported.
    assert min(kept) > CUT_AFTER // 2, kept
    assert stored_sha256(tmp_path, upload) == hashlib.sha256(data).hexdigest()


def test_tuspy_resumes_at_once_after_drops(tmp_path, logs_dir, creator_token):
    """tuspy with retries=1 and no delay: after each drop one HEAD and one PATCH must do, or
    it gives up. Every other PATCH is cut off after CUT_AFTER bytes."""
    data = os.urandom(10 * MIB)
    source = tmp_path / "clip.bin"
    source.write_bytes(data)
    with web_server(server_env(tmp_path), logs_dir / "web.log") as base:
        uploader = uploader_for(base, creator_token, source)
        uploader.set_url(uploader.create_url())
        upload_id = uploader.url.rsplit("/", 1)[-1]
        with cutting_proxy(
            int(base.rsplit(":", 1)[-1]),
            method=b"PATCH",
            after_bytes=CUT_AFTER,
            before_cut=lambda: wait_until_writing(upload_id),
        ) as proxy:
            url = f"http://127.0.0.1:{proxy.port}/api/v1/uploads/{upload_id}"
            resumed = uploader_for(
                f"http://127.0.0.1:{proxy.port}", creator_token, source, url=url, chunk=2 * MIB
            )
            resumed.retries, resumed.retry_delay = 1, 0
            resumed.upload()
    assert proxy.cuts >= 3
    upload = Upload.objects.get(pk=upload_id)
    assert upload.offset == len(data)
    assert stored_sha256(tmp_path, upload) == hashlib.sha256(data).hexdigest()
