"""Faults injected for real: a TCP proxy between StreamGate and a service (PostgreSQL, Redis)
that can cut every connection, refuse new ones, or go silent, and then come back.

The service itself keeps running (other tests share it); what the code under test sees is what
it would see if the service died, restarted or hung: connections reset mid-query, connects
refused, or packets that never get an answer.
"""

import socket
import struct
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress

BLOCK = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer's kernel would answer.

    ``shutdown(SHUT_RD)`` first: on Linux, closing a socket that another thread is blocked on
    in ``recv`` neither wakes that thread nor closes anything (the pending call holds the socket
    open), so an idle connection outlived ``down()`` on both sides: the server kept the session
    (and a transaction's locks) and the client only learnt of it when it next wrote. SHUT_RD
    wakes the pump, which lets go of the socket; the close then resets it.
    """
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with suppress(OSError):
        sock.close()


class FaultProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port>.

    - ``down()``: resets every connection and refuses new ones (the service died: its sessions,
      and their transactions, end with it).
    - ``sever()``: resets the client's side of every connection and leaves the service's side
      open and silent (a firewall or load balancer that forgot its flows, a client host that
      vanished): the service never hears that its clients are gone.
    - ``pause()``: keeps connections open but forwards nothing, and accepts new connections
      without answering (the service hangs, or a network partition).
    - ``up()``: back to normal; connections made while paused go on where they were.
    """

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._orphans: list[socket.socket] = []
        self._cut: weakref.WeakSet[socket.socket] = weakref.WeakSet()  # reset by us
        self._listener: socket.socket | None = None
        self._closed = False
        self._generation = 0  # bumped by down(): a connection accepted before it never pairs
        self.connections = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        self._listen()
        return self

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._stop_listening()
        self._reset_all()

    @property
    def url_port(self) -> int:
        return self.port

    # -- faults ---------------------------------------------------------------------------

    def down(self) -> None:
        """The service is gone: live connections are reset, new ones refused."""
        self._stop_listening()
        self._reset_all()

    def sever(self) -> None:
        """The way to the service is lost: our clients are reset, the service hears nothing."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._orphans += [upstream for _, upstream in pairs]  # open until down() or close()
        for client, _ in pairs:
            self._reset(client)

    def pause(self) -> None:
        """The service stops answering; nothing is closed."""
        self._flowing.clear()

    def up(self) -> None:
        """The service is back."""
        self._flowing.set()
        if self._listener is None:
            self._listen()

    # -- plumbing -------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                listener.close()

    def _reset_all(self) -> None:
        with self._lock:
            self._generation += 1
            pairs, self._pairs = self._pairs, []
            orphans, self._orphans = self._orphans, []
        for client, upstream in pairs:
            self._reset(client)
            self._reset(upstream)
        for upstream in orphans:
            self._reset(upstream)

    def _reset(self, sock: socket.socket) -> None:
        self._cut.add(sock)  # before its pump wakes: EOF from it is ours, not the peer's
        _reset(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped listening
            with self._lock:
                generation = self._generation
            threading.Thread(target=self._open, args=(client, generation), daemon=True).start()

    def _open(self, client: socket.socket, generation: int) -> None:
        self._flowing.wait()  # a paused service accepts and then says nothing
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:  # a down() since the accept (or a close()) reset this one too
            live = not self._closed and generation == self._generation
            if live:
                self._pairs.append((client, upstream))
                self.connections += 1
        if not live:
            self._reset(client)
            self._reset(upstream)
            return
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(BLOCK)
            except OSError:
                data = b""
            if not data:
                break
            self._flowing.wait()
            try:
                target.sendall(data)
            except OSError:
                break
        if source not in self._cut:  # the peer closed its side: say so to the other one
            with suppress(OSError):
                target.shutdown(socket.SHUT_WR)


@contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
