"""Request bodies that reach the view as they arrive, for tus uploads.

Django's ASGIHandler reads the whole body into a temporary file before it calls the view. For an
upload that is wrong twice over: a client that sends a 5 GB file in one PATCH (tus-js-client's and
Uppy's default) writes it to disk twice, and if its connection drops at 4.9 GB, nothing is kept,
so "resume" starts from zero. For the paths in ``settings.STREAMING_BODY_PATHS`` this handler
instead gives the view a file-like object that pulls ``http.request`` messages from the server
as the view reads. The server (uvicorn) stops reading the socket while the view is busy, so
memory stays at one message whatever the size of the body; a client that disconnects mid-body
shows up as an early end of the body, and the view keeps what it received. So does a server
told to stop (streamgate/shutdown.py): the body ends at the next chunk, and the view commits
what it stored and answers before the server exits.

Everything else (middleware, authentication, CSRF, CORS, metrics) runs exactly as for any
request, because only ``read_body`` and ``listen_for_disconnect`` change.
"""

import asyncio
import contextlib
import errno
import fcntl
import io
import logging
import os
import re
import select
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from streamgate import shutdown
from streamgate.http_protocol import DETACH_BODY

logger = logging.getLogger(__name__)


class ReceiveStream(io.RawIOBase):
    """A readable, non-seekable body over ASGI ``receive``, read from the view's thread."""

    def __init__(self, receive, path: str = "") -> None:
        super().__init__()
        self._receive = receive
        self.path = path
        self.received = 0
        self._chunks: deque[memoryview] = deque()  # received, not yet read; no copies
        self._buffered = 0
        self._more = True
        self.idle_timeout = settings.STREAMING_BODY_IDLE_TIMEOUT
        self.disconnected = False
        self.timed_out = False
        self.cut_short = False  # the server is shutting down: the body ended early
        self.finished = asyncio.Event()

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        self._more = False
        self.finished.set()  # runs on the event loop (inside _fill)

    def readinto(self, buffer) -> int:
        if not self._buffered and self._more:
            # One hop to the event loop per call, which gathers as many ASGI messages (64 KiB
            # each with uvicorn) as the caller asked for: hops, not bytes, are what cost here.
            async_to_sync(self._fill)(len(buffer))
        target = memoryview(buffer).cast("B")
        count = 0
        while self._chunks and count < len(target):
            chunk = self._chunks[0]
            take = min(len(chunk), len(target) - count)
            target[count : count + take] = chunk[:take]
            count += take
            if take == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[take:]
        self._buffered -= count
        return count

    def chunks(self, gather: int = 1024 * 1024) -> Iterator[memoryview]:
        """The body as the server delivered it, without copying: for writers that take any
        bytes-like object. Gathers about ``gather`` bytes per hop to the event loop."""
        while True:
            if not self._chunks and self._more:
                async_to_sync(self._fill)(gather)
            if not self._chunks:
                return
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            yield chunk

    async def _fill(self, wanted: int) -> None:
        if not self._more or self._buffered >= wanted:
            return
        end = await shutdown.receive_until(
            self._receive, self.idle_timeout, lambda message: self._take(message, wanted)
        )
        if end == "timeout":
            # A client that sends nothing for this long is as good as gone (a dead mobile
            # link keeps its TCP connection open for minutes): end the body here, so the
            # view stores what arrived and frees its lease and database connection.
            self.timed_out = True
            self.disconnected = True
            self._finish()
        elif end == "drain":
            # The server was told to stop: end the body here, so the view stores and
            # commits what arrived, and answers, within the server's grace period.
            logger.warning(
                "upload body cut short by shutdown",
                extra={"path": self.path, "received": self.received},
            )
            self.cut_short = True
            self._finish()

    def _take(self, message: dict[str, Any], wanted: int) -> bool:
        """Keep one ASGI message's bytes; whether to stop receiving (enough is buffered, or
        the body ended)."""
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self._finish()
            return True
        body = message.get("body", b"")
        if body:
            self._chunks.append(memoryview(body))
            self._buffered += len(body)
            self.received += len(body)
        if not message.get("more_body", False):
            self._finish()
            return True
        return self._buffered >= wanted


class SocketBody:
    """The rest of a request's body, moved from the client's socket into a file by the kernel
    (splice(2) through a pipe): no byte is copied into Python, none waits in its memory, and
    the writing thread needs neither the GIL nor the event loop while bytes move.

    Made by ``detach`` from the HTTP server's ``streamgate.detach_body`` extension
    (streamgate/http_protocol.py), which stops the server reading that socket and hands over a
    duplicate of its descriptor (whatever the server does with its own, this one stays the
    client's); the connection closes after the response. Read from one worker thread, at most
    ``STEP`` bytes per call so that the caller keeps its lease and commits as it goes. The body
    ends early as a streamed one does: when the client goes away or its socket fails
    (``disconnected``), sends nothing for STREAMING_BODY_IDLE_TIMEOUT seconds (``timed_out``)
    or the server drains (``cut_short``); ``moved`` counts the bytes that reached the file,
    whatever happens. A file system that cannot splice into files gets the pipe's bytes through
    read(2) and write(2).

    Why by hand: no library splices an ASGI request's socket; os.splice is the system call."""

    PIPE_BYTES = 1024 * 1024  # asked of the kernel (fs.pipe-max-size allows 1 MiB by default)
    STEP = 1024 * 1024  # the most one splice_to call moves
    POLL_SECONDS = 0.25  # how soon a wait for the client notices a drain
    READY_BUT_EMPTY = 100  # polls that say "readable" before a splice that finds nothing: over

    def __init__(self, path: str = "") -> None:
        self.fd = -1  # our duplicate of the client's socket, once detached
        self.remaining = 0  # bytes of the body still in the socket
        self.path = path
        self.moved = 0
        self.disconnected = self.timed_out = self.cut_short = False
        self.idle_timeout = settings.STREAMING_BODY_IDLE_TIMEOUT
        self._data_at = time.monotonic()
        self._empty_polls = 0
        self._splices_files = True
        self._read = self._write = -1
        self._open_pipe()

    def _open_pipe(self) -> None:
        self._read, self._write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            self.pipe_bytes = fcntl.fcntl(self._write, fcntl.F_SETPIPE_SZ, self.PIPE_BYTES)
        except OSError:  # a lower fs.pipe-max-size: the default pipe, 64 KiB
            self.pipe_bytes = fcntl.fcntl(self._write, fcntl.F_GETPIPE_SZ)

    def __len__(self) -> int:
        return self.remaining

    @property
    def ended(self) -> bool:
        return self.disconnected or self.timed_out or self.cut_short

    def splice_to(self, out: int, count: int) -> None:
        """Move up to ``count`` (at most STEP) bytes of the body into the file ``out`` at its
        position; ``moved`` grows by what reached it (also when a write fails, which is
        raised, leaving bytes in the pipe: ``discard`` starts a new one). Returns once that
        much moved, the body ended (``remaining`` 0, or ``ended``), or after waiting at most
        POLL_SECONDS for the client."""
        target = self.moved + min(count, self.STEP, self.remaining)
        while self.moved < target and not self.ended:
            if shutdown.draining():
                self._cut()
                return
            want = min(target - self.moved, self.pipe_bytes)
            try:
                taken = os.splice(
                    self.fd, self._write, want, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
                )
            except BlockingIOError:
                self._wait()
                return
            except OSError as error:  # the client's socket failed: as good as gone
                logger.info("upload body socket failed: %s", error, extra={"path": self.path})
                taken = 0
            if not taken:  # the client closed its end
                self.disconnected = True
                return
            self._data_at = time.monotonic()
            self._empty_polls = 0
            self.remaining -= taken
            self._to_file(out, taken)

    def _to_file(self, out: int, count: int) -> None:
        """The ``count`` bytes in the pipe, into the file; an error here is the disk's."""
        while count:
            if self._splices_files:
                try:
                    written = os.splice(self._read, out, count, flags=os.SPLICE_F_MOVE)
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
                    self._splices_files = False  # this file system cannot: copy instead
                    continue
            else:
                block = os.read(self._read, count)
                view = memoryview(block)
                while view:
                    done = os.write(out, view)
                    self.moved += done
                    count -= done
                    view = view[done:]
                continue
            self.moved += written
            count -= written

    def _wait(self) -> None:
        """Wait (at most POLL_SECONDS) until the socket has bytes or an end for us; past the
        idle timeout since the last bytes, the body has ended. A socket that keeps saying it
        is readable while a splice finds nothing (urgent data at the head of its queue) ends
        the body too, rather than spinning until the idle timeout."""
        left = self.idle_timeout - (time.monotonic() - self._data_at)
        if left <= 0:
            self.timed_out = True
            logger.warning("upload body idle", extra={"path": self.path, "moved": self.moved})
            return
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLPRI | select.POLLRDHUP)
        events = poller.poll(1000 * min(left, self.POLL_SECONDS))
        if not events:
            return
        self._empty_polls += 1
        if any(event & select.POLLPRI for _, event in events) or (
            self._empty_polls > self.READY_BUT_EMPTY
        ):
            logger.info("upload body ended: urgent data", extra={"path": self.path})
            self.disconnected = True

    def _cut(self) -> None:
        logger.warning(
            "upload body cut short by shutdown", extra={"path": self.path, "moved": self.moved}
        )
        self.cut_short = True

    def discard(self) -> None:
        """Read what is left of the body and drop it (the kernel moves it to /dev/null), as
        the server does with a body the application answered early: a client that sends its
        whole body before it reads the answer (most do) then gets the answer, not a connection
        reset. Nothing to do for a body that ended early (the client left or went quiet, or
        the server drains). A new pipe first: a failed write may have left bytes in the old."""
        if not self.remaining or self.ended:
            return
        self._close_pipe()
        self._open_pipe()
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            while self.remaining and not self.ended:
                self.splice_to(null, self.remaining)
        finally:
            os.close(null)

    def _close_pipe(self) -> None:
        for fd in (self._read, self._write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read = self._write = -1

    def close(self) -> None:
        """Let go of the pipe and of our descriptor of the socket (the server closes its own
        after the answer)."""
        self._close_pipe()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


async def detach(scope: dict[str, Any], length: int) -> tuple[list[bytes], SocketBody] | None:
    """On the event loop: the bytes of a body of ``length`` bytes the server has already
    parsed, and a SocketBody for the rest; None when the server offers no socket (another
    protocol class, TLS) or none is needed (the body is all here)."""
    detach_body = scope.get("extensions", {}).get(DETACH_BODY)
    if detach_body is None:
        return None
    body = SocketBody(scope.get("path", ""))  # its pipe first: an error here changes nothing
    try:
        handed = detach_body(length)
    except BaseException:
        body.close()
        raise
    if handed is None:
        body.close()
        return None
    body.fd, first, body.remaining = handed
    return first, body


class _StreamedBody(io.BufferedReader):
    """The request's body file; remembers its ReceiveStream for ``request.body_chunks``."""

    def __init__(self, stream: ReceiveStream) -> None:
        super().__init__(stream, buffer_size=1024 * 1024)
        self.stream = stream


class _StreamingReceive:
    """Marks a request whose body streams; carries the stream and the real ``receive``."""

    def __init__(self, receive, stream: ReceiveStream) -> None:
        self.receive = receive
        self.stream = stream

    async def __call__(self) -> dict[str, Any]:
        return await self.receive()


class StreamingBodyASGIHandler(ASGIHandler):
    """Django's ASGI handler, streaming the bodies of the configured paths to the view, and
    running the (synchronous) middleware chain in one thread per request."""

    def __init__(self) -> None:
        super().__init__()
        self.streaming_paths = [re.compile(pattern) for pattern in settings.STREAMING_BODY_PATHS]

    def load_middleware(self, is_async: bool = False) -> None:
        """Build the chain in sync mode and enter it with one thread hop.

        Our middleware is synchronous (WhiteNoise, django-prometheus and Django's own
        MiddlewareMixin classes, which under an async chain cost two hops each): built for async,
        a request crossed between the event loop and a thread about fifteen times, a few
        milliseconds of pure overhead. Django's handler still gives each request its own thread
        (ThreadSensitiveContext), so requests run concurrently as before.
        """
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    def streams(self, scope: dict[str, Any]) -> bool:
        return scope.get("method") in ("POST", "PATCH", "PUT") and any(
            pattern.match(scope.get("path", "")) for pattern in self.streaming_paths
        )

    async def handle(self, scope, receive, send) -> None:
        # SIGTERM (a rollout, a scale-down): streamed bodies end, commit and answer, so uvicorn
        # exits well within --timeout-graceful-shutdown (streamgate/shutdown.py).
        shutdown.install()
        if scope["type"] == "http" and self.streams(scope):
            receive = _StreamingReceive(receive, ReceiveStream(receive, scope.get("path", "")))
        await super().handle(scope, receive, send)

    def create_request(self, scope, body_file):
        request, error = super().create_request(scope, body_file)
        if request is not None and isinstance(body_file, _StreamedBody):
            # Views that can write memoryviews read the chunks directly (no copies); the
            # request's file interface stays usable for everything else.
            request.body_chunks = body_file.stream.chunks
        return request, error

    async def read_body(self, receive):
        if isinstance(receive, _StreamingReceive):
            return _StreamedBody(receive.stream)
        return await super().read_body(receive)

    async def listen_for_disconnect(self, receive):
        if isinstance(receive, _StreamingReceive):
            # The body belongs to the view until it is read to the end; only then may this
            # listener take messages (and learn of a disconnect) from the server.
            await receive.stream.finished.wait()
            if receive.stream.disconnected or receive.stream.cut_short:
                # Already gone, or its body was cut short by a shutdown (the rest of it is
                # still on the connection): let the view finish its commit and answer.
                await asyncio.Event().wait()
            receive = receive.receive
        return await super().listen_for_disconnect(receive)
