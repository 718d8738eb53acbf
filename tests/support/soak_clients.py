"""Clients for the soak benchmark (tests/benchmarks/soak.py): every request they make is recorded
with its outcome, and they behave as real clients do when the server answers 503 or drops them.

- ``Recorder``: one row per HTTP request (kind, phase, status, Retry-After, latency, request id).
- ``HttpConnection``: a small asyncio HTTP/1.1 client (keep-alive, Content-Length or chunked), so
  that viewers cost the load generator little CPU on the two cores it shares with the stack.
- ``ResumingUpload``: a tuspy upload that, after an error, waits (the server's Retry-After when it
  sent one, else a capped backoff), asks the offset with HEAD and goes on from there, as
  tus-js-client and Uppy do.
"""

import asyncio
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusUploadFailed
from tusclient.request import TusRequest
from tusclient.uploader import Uploader

# What a request's outcome is filed under, besides its status code.
CONNECTION_ERROR = "connection error"
TIMEOUT = "timeout"


@dataclass
class Row:
    started: float  # time.monotonic()
    latency: float
    kind: str  # "api read", "playback", "stream", "tus", "readyz", "sign-in"
    method: str
    path: str
    phase: str
    status: int | None  # None: no response (connection error or timeout)
    error: str = ""  # CONNECTION_ERROR / TIMEOUT (and the exception) when status is None
    retry_after: str | None = None
    request_id: str = ""
    body: str = ""  # the start of an error response's body


class Recorder:
    """Thread-safe list of rows; ``phase`` is set by the timeline as it goes."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.phase = "setup"
        self._lock = threading.Lock()

    def add(self, row: Row) -> None:
        with self._lock:
            self.rows.append(row)

    def response(
        self,
        *,
        kind: str,
        method: str,
        path: str,
        started: float,
        phase: str,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> None:
        self.add(
            Row(
                started=started,
                latency=time.monotonic() - started,
                kind=kind,
                method=method,
                path=path,
                phase=phase,
                status=status,
                retry_after=headers.get("retry-after"),
                request_id=headers.get("x-request-id", ""),
                body=body[:300].decode(errors="replace") if status >= 400 else "",
            )
        )

    def failure(
        self, *, kind: str, method: str, path: str, started: float, phase: str, error: str
    ) -> None:
        self.add(
            Row(
                started=started,
                latency=time.monotonic() - started,
                kind=kind,
                method=method,
                path=path,
                phase=phase,
                status=None,
                error=error,
            )
        )


# --- viewers: asyncio HTTP/1.1 ------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """One keep-alive connection to 127.0.0.1:``port``; requests are recorded in ``recorder``."""

    def __init__(self, port: int, recorder: Recorder, *, timeout: float) -> None:
        self.port = port
        self.recorder = recorder
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(
        self, kind: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Response | None:
        """The response, or None after a connection error or a timeout (both recorded)."""
        started, phase = time.monotonic(), self.recorder.phase
        try:
            response = await asyncio.wait_for(
                self._exchange(method, path, headers, body), self.timeout
            )
        except TimeoutError as error:
            await self._drop()
            self.recorder.failure(
                kind=kind,
                method=method,
                path=path,
                started=started,
                phase=phase,
                error=f"{TIMEOUT} after {self.timeout:g} s{' ' + str(error) if str(error) else ''}",
            )
            return None
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            await self._drop()
            self.recorder.failure(
                kind=kind,
                method=method,
                path=path,
                started=started,
                phase=phase,
                error=f"{CONNECTION_ERROR}: {type(error).__name__}: {error}",
            )
            return None
        self.recorder.response(
            kind=kind,
            method=method,
            path=path,
            started=started,
            phase=phase,
            status=response.status,
            headers=response.headers,
            body=response.body,
        )
        return response

    async def _drop(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        found: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                found[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in found:
            body = await self.reader.readexactly(int(found["content-length"]))
        elif found.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = await self.reader.read()
            found["connection"] = "close"
        if found.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return Response(status, found, body)

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def playlist_uris(text: str) -> list[str]:
    """URIs in an HLS playlist: its non-comment lines and EXT-X-MAP's URI (the init segment)."""
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    uris += re.findall(r'#EXT-X-MAP:.*?URI="([^"]+)"', text)
    return uris


# --- creators: tuspy, resuming as real clients do --------------------------------------------


class UploadGaveUp(Exception):
    """The client's patience ran out before the upload finished."""


@dataclass
class UploadRecord:
    """One creator's upload as the client saw it."""

    path: Path
    sha256: str
    size: int
    title: str
    started: float
    url: str = ""
    finished: float | None = None
    gave_up: str = ""  # why, when the client gave up
    retries: int = 0
    patches: int = 0
    orphans: list[float] = field(default_factory=list)  # when POSTs whose answer never came began
    sending: tuple[str, float] | None = None  # the request awaiting its answer, and since when


class ResumingUploader(Uploader):
    """tuspy's Uploader (its PATCH requests as they are) with a client's resume loop around them:
    a failed POST is sent again, a failed PATCH is followed by a wait and a HEAD, and the upload
    goes on from the offset the server answers. Waits honour Retry-After."""

    def __init__(
        self,
        *,
        record: UploadRecord,
        recorder: Recorder,
        endpoint: str,
        token: str,
        chunk_size: int,
        pause: float,
        patience: float,
        stop: threading.Event,
    ) -> None:
        self.soak_record = record
        self.recorder = recorder
        self.patience_until = time.monotonic() + patience
        self.pause = pause
        self.stop = stop
        self.last_retry_after: str | None = None
        client = tus_client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
        metadata = {"filename": record.path.name, "title": record.title}
        super().__init__(
            file_path=str(record.path), client=client, chunk_size=chunk_size, metadata=metadata
        )

    def run(self) -> None:
        """Create the upload and send every byte; raises UploadGaveUp when patience runs out."""
        self.url = self._persist(self._create)
        self.soak_record.url = self.url
        self.offset = 0
        while self.offset < self.stop_at:
            self._persist(self._patch)
            if self.offset < self.stop_at and self.pause:
                self.stop.wait(self.pause)  # a slow link: the upload spans several seconds
        self.soak_record.finished = time.monotonic()

    # -- one request each, recorded ------------------------------------------------------------

    def _begin(self, method: str) -> tuple[float, str]:
        started = time.monotonic()
        self.soak_record.sending = (method, started)
        return started, self.recorder.phase

    def _create(self) -> str:
        started, phase = self._begin("POST")
        try:
            response = requests.post(
                self.client.url, headers=self.get_url_creation_headers(), timeout=60
            )
        except requests.RequestException as error:
            self._failed("POST", self.client.url, started, phase, error)
            # The server may have created it: a client that lost the answer makes another one.
            self.soak_record.orphans.append(started)
            raise
        self._answered("POST", self.client.url, started, phase, response)
        if response.status_code != 201 or "location" not in response.headers:
            raise RetryableAnswer(response.status_code)
        return urljoin(self.client.url, response.headers["location"])

    def _patch(self) -> None:
        started, phase = self._begin("PATCH")
        self.request = TusRequest(self)
        self.soak_record.patches += 1
        try:
            self.request.perform()
        except TusUploadFailed as error:  # tuspy's wrapper of requests' errors
            self._failed("PATCH", self.url, started, phase, error.__context__ or error)
            raise
        headers = self.request.response_headers
        self.soak_record.sending = None
        self.recorder.response(
            kind="tus",
            method="PATCH",
            path=self.url,
            started=started,
            phase=phase,
            status=self.request.status_code,
            headers=headers,
            body=self.request.response_content or b"",
        )
        self.last_retry_after = headers.get("retry-after")
        if not 200 <= self.request.status_code < 300:
            raise RetryableAnswer(self.request.status_code)
        self.offset = int(headers["upload-offset"])

    def _head(self) -> None:
        started, phase = self._begin("HEAD")
        try:
            response = requests.head(self.url, headers=self.get_headers(), timeout=60)
        except requests.RequestException as error:
            self._failed("HEAD", self.url, started, phase, error)
            raise
        self._answered("HEAD", self.url, started, phase, response)
        if response.status_code != 200 or "upload-offset" not in response.headers:
            raise RetryableAnswer(response.status_code)
        self.offset = int(response.headers["upload-offset"])

    # -- the resume loop -----------------------------------------------------------------------

    def _persist(self, step):
        """Run ``step`` until it succeeds; after a PATCH fails, HEAD before the next one."""
        delay = 1.0
        while True:
            try:
                return step()
            except (requests.RequestException, TusUploadFailed, RetryableAnswer) as error:
                if isinstance(error, RetryableAnswer) and error.status in (400, 403, 404, 410, 413):
                    raise UploadGaveUp(f"{step.__name__} answered {error.status}") from error
                last = error
            self.soak_record.retries += 1
            wait = self._wait(delay)
            delay = min(delay * 2, 8.0)
            if time.monotonic() + wait > self.patience_until:
                raise UploadGaveUp(f"patience ran out; last error: {last}") from last
            time.sleep(wait)
            if step == self._patch:
                step = self._resume

    def _resume(self) -> None:
        self._head()
        if self.offset < self.stop_at:
            self._patch()

    def _wait(self, delay: float) -> float:
        """The server's Retry-After (seconds) when it sent one, else ``delay`` with jitter."""
        if self.last_retry_after and self.last_retry_after.isdigit():
            wait = float(self.last_retry_after)
            self.last_retry_after = None
            return wait
        return delay * random.uniform(0.5, 1.0)

    def _answered(self, method, path, started, phase, response: requests.Response) -> None:
        self.soak_record.sending = None
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.last_retry_after = headers.get("retry-after")
        self.recorder.response(
            kind="tus",
            method=method,
            path=path,
            started=started,
            phase=phase,
            status=response.status_code,
            headers=headers,
            body=response.content,
        )

    def _failed(self, method, path, started, phase, error) -> None:
        self.soak_record.sending = None
        self.last_retry_after = None
        timeout = isinstance(error, requests.Timeout)
        label = TIMEOUT if timeout else CONNECTION_ERROR
        self.recorder.failure(
            kind="tus",
            method=method,
            path=path,
            started=started,
            phase=phase,
            error=f"{label}: {type(error).__name__}: {error}"[:300],
        )


class RetryableAnswer(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"answered {status}")
        self.status = status
