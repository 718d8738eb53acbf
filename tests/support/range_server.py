"""A file served over HTTP with byte ranges, as S3 serves a presigned GET, that counts what it
sends: how much of a source a reader (FFmpeg) took, and which ranges it asked for. Or, as
``counting_proxy``, the same count in front of a real S3 API (the moto server): GET and HEAD
forwarded with their Range header, the answer relayed as it comes.

Its socket's send buffer is small, so that what it counts as sent is what the reader received,
give or take that buffer (the reader's own receive buffer is the reader's to bound).
"""

import http.client
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SEND_BUFFER = 64 * 1024
BLOCK = 16 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.ranges: list[str | None] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        super().server_bind()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/{self.path.name}"

    def reset(self) -> None:
        with self.lock:
            self.bytes_sent, self.ranges = 0, []

    def count(self, sent: int) -> None:
        with self.lock:
            self.bytes_sent += sent


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        size = self.server.size
        requested = self.headers.get("Range")
        with self.server.lock:
            self.server.ranges.append(requested)
        start, end = 0, size - 1
        if requested:
            match = _RANGE.match(requested.strip())
            if match is None or (not match[1] and not match[2]):
                self._refuse(size)
                return
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:  # the last N bytes
                start = max(0, size - int(match[2]))
            if start >= size or start > end:
                self._refuse(size)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            self._send(start, end - start + 1)

    def _refuse(self, size: int) -> None:
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, start: int, length: int) -> None:
        with self.server.path.open("rb") as source:
            source.seek(start)
            while length:
                block = source.read(min(BLOCK, length))
                if not block:
                    return
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return  # the reader seeked elsewhere, or has what it needs
                self.server.count(len(block))
                length -= len(block)


@contextmanager
def range_server(path: Path) -> Iterator[RangeServer]:
    """Serve ``path`` on a free loopback port until the block ends."""
    server = RangeServer(path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class CountingProxy(RangeServer):
    """GET and HEAD forwarded to ``upstream`` (scheme://host:port), counting what goes back."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.ranges = []
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _ProxyHandler(_Handler):
    server: CountingProxy

    def _answer(self, *, body: bool) -> None:
        requested = self.headers.get("Range")
        with self.server.lock:
            self.server.ranges.append(requested)
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            upstream.request(
                self.command, self.path, headers={"Range": requested} if requested else {}
            )
            answer = upstream.getresponse()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "server", "date"):
                    self.send_header(name, value)
            self.end_headers()
            while body and (block := answer.read(BLOCK)):
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                self.server.count(len(block))
        finally:
            upstream.close()


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    """A proxy to ``upstream`` on a free loopback port until the block ends."""
    server = CountingProxy(upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
