"""uvicorn's httptools protocol, handing request bodies to the application without copying them.

uvicorn (0.54) gathers the body of a request in a ``bytearray`` and hands each ASGI
``http.request`` message over as ``bytes(bytearray)``: every byte of an upload is copied twice
in Python, on top of the copies the event loop and the HTTP parser make, on the event loop's
thread, which a busy upload server keeps nearly always running. Profiled under four clients
uploading 5 MiB chunks (py-spy, samples holding the GIL), those two copies were 12% of the web
process's Python time (README "Uploads").

This subclass keeps the parser's own ``bytes`` objects in a list instead and hands them over
as they are: the object itself when one arrived (the usual case: the server stops reading the
socket while a message waits), else joined once. Flow control is uvicorn's: reading pauses
once more than its high-water mark waits, and resumes when the application asks for more.
Everything else (headers, responses, keep-alive, pipelining, upgrades to websockets, the access
log, timeouts) is uvicorn's, unchanged.

Every command line that starts the web server (Procfile, Dockerfile, compose, Kubernetes,
tests/support/processes.py) passes ``--http streamgate.http_protocol:HttpProtocol``; without
it uvicorn's own class serves, correctly, with the copies.

It also offers the application the rest of a body straight from the socket: the ASGI scope's
``extensions`` carry ``streamgate.detach_body``, a callable (on the event loop) that stops
reading the client's socket, hands over the bytes already parsed, the socket's descriptor and
how many body bytes are still in it, and marks the connection to close after the response, as
the parser never sees those bytes. A tus PATCH bound for a file on disk uses it to have the
kernel move the bytes (splice(2), streamgate/streaming.py ``SocketBody``); nothing else does.
Offered only on plain TCP (behind a proxy that ends TLS, or none): under TLS the socket's bytes
are ciphertext.

Why by hand: uvicorn has no option for either. The override is the methods that touch the
body, checked against the pinned uvicorn by tests/streamgate/test_http_protocol.py.
"""

import os
import weakref
from collections.abc import Callable
from typing import cast

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import is_ssl

DETACH_BODY = "streamgate.detach_body"


class _Cycle(RequestResponseCycle):
    """One request's cycle; the body waits as the parser's ``bytes`` objects."""

    chunks: list[bytes]
    buffered: int
    received: int  # body bytes parsed so far
    detached: bool

    def detach_body(self, length: int) -> tuple[int, list[bytes], int] | None:
        """Stop reading the socket and hand the rest of a body of ``length`` bytes (its
        Content-Length) to the caller: (a duplicate of the socket's descriptor, which the
        caller closes; the bytes parsed but not yet received; the bytes still in the socket).
        None when there is nothing to detach (the body is all here, or the client left) or no
        socket to detach it from."""
        if self.detached or self.disconnected or not self.more_body or self.received >= length:
            return None
        socket = self.transport.get_extra_info("socket")
        if socket is None or is_ssl(self.transport) or self.transport.is_closing():
            return None
        # Ours to close: if the server closes its own (the client reset, a shutdown's cancel),
        # this one still names the client's socket, never a descriptor reused meanwhile.
        fd = os.dup(socket.fileno())
        self._continue()  # as receive() does: a client that asked waits for it before its body
        self.flow.pause_reading()  # resumed only by receive(), which the caller no longer calls
        self.keep_alive = False  # the parser is mid-body: the connection ends with this answer
        self.detached = True
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        return fd, chunks, length - self.received

    def _continue(self) -> None:
        """Send the ``100 Continue`` a client that sent ``Expect: 100-continue`` waits for."""
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False

    async def receive(self) -> ASGIReceiveEvent:
        # uvicorn's RequestResponseCycle.receive, but for how the body is handed over.
        self._continue()
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        return {"type": "http.request", "body": body, "more_body": self.more_body}


def _detacher(cycle: "weakref.ref[_Cycle]") -> Callable[[int], tuple[int, list[bytes], int] | None]:
    """The scope's ``detach_body``, holding its cycle weakly (the cycle holds the scope: a
    strong reference would leave every request's cycle to the garbage collector)."""

    def detach_body(length: int) -> tuple[int, list[bytes], int] | None:
        found = cycle()
        return None if found is None else found.detach_body(length)

    return detach_body


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose request cycles keep body bytes uncopied."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and type(self.cycle) is RequestResponseCycle:
            # A new request's cycle (an upgrade to a websocket makes none): the same object,
            # with the receive above. Its task has been created but has not run yet.
            cycle = cast(_Cycle, self.cycle)
            cycle.__class__ = _Cycle
            cycle.chunks = []
            cycle.buffered = cycle.received = 0
            cycle.detached = False
            extensions = cycle.scope.setdefault("extensions", {})
            extensions[DETACH_BODY] = _detacher(weakref.ref(cycle))

    def on_body(self, body: bytes) -> None:
        # uvicorn's HttpToolsProtocol.on_body, keeping the bytes object instead of copying it.
        cycle = cast(_Cycle, self.cycle)
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.chunks.append(body)
        cycle.buffered += len(body)
        cycle.received += len(body)
        if cycle.buffered > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()
