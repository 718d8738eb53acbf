"""The soak benchmark's tus client resumes as real clients do, and records what it saw.

Its server here is a minimal tus server that answers the first PATCH with 503 and Retry-After
and drops the connection of the second without answering: the client must wait as told, ask the
offset with HEAD, go on from there, and end with every byte sent once, in order.
"""

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.soak_clients import Recorder, ResumingUploader, UploadRecord


class FlakyTusServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stored = bytearray()
    patches = 0

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Tus-Resumable": "1.0.0", "Content-Length": "0", **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def do_POST(self) -> None:
        self._answer(201, Location="/files/1")

    def do_HEAD(self) -> None:
        self._answer(200, Upload_Offset=str(len(self.stored)), Upload_Length="999")

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).patches += 1
        if self.patches == 1:
            self._answer(503, Retry_After="2")
        elif self.patches == 2:
            self.connection.shutdown(2)  # the service went away mid-request: no answer
            self.close_connection = True
        elif int(self.headers["Upload-Offset"]) != len(self.stored):
            self._answer(409)
        else:
            self.stored.extend(body)
            self._answer(204, Upload_Offset=str(len(self.stored)))


@pytest.fixture
def server():
    FlakyTusServer.stored, FlakyTusServer.patches = bytearray(), 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FlakyTusServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_waits_for_retry_after_then_heads_and_resumes(server, tmp_path):
    data = os.urandom(5 * 1000)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    record = UploadRecord(path=path, sha256="", size=len(data), title="t", started=0.0)
    recorder = Recorder()
    uploader = ResumingUploader(
        record=record,
        recorder=recorder,
        endpoint=f"{server}/files/",
        token="secret",
        chunk_size=1000,
        pause=0,
        patience=30,
        stop=threading.Event(),
    )

    uploader.run()

    assert hashlib.sha256(FlakyTusServer.stored).digest() == hashlib.sha256(data).digest()
    assert record.finished is not None
    assert record.url == f"{server}/files/1"
    seen = [(row.method, row.status, row.retry_after) for row in recorder.rows]
    assert seen[:6] == [
        ("POST", 201, None),
        ("PATCH", 503, "2"),
        ("HEAD", 200, None),
        ("PATCH", None, None),  # dropped: recorded as a connection error
        ("HEAD", 200, None),
        ("PATCH", 204, None),
    ]
    assert recorder.rows[3].error.startswith("connection error")
    assert recorder.rows[2].started - recorder.rows[1].started >= 2.0  # Retry-After honoured
    assert [row.method for row in recorder.rows[6:]] == ["PATCH"] * 4
    assert record.retries == 2
    assert record.sending is None  # nothing left awaiting an answer
