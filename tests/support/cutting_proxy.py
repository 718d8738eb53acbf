"""A TCP proxy on loopback that cuts one request's connection midway, as a dropped mobile or
Wi-Fi link does: the network at the edge of the world, in front of a real server."""

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class CuttingProxy:
    """Forwards every connection to ``upstream``. Of the connections whose request starts with
    ``method``, every other one (the first, the third, ...) is closed, both ways, once
    ``after_bytes`` of it have been forwarded and ``before_cut()`` has returned (the test's way
    to know the server is busy with it); the ones between go through whole."""

    def __init__(
        self,
        upstream_port: int,
        *,
        method: bytes,
        after_bytes: int,
        before_cut: Callable[[], None],
    ) -> None:
        self.upstream_port = upstream_port
        self.method = method
        self.after_bytes = after_bytes
        self.before_cut = before_cut
        self.cuts = 0
        self.matched = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._spawn(self._forward_requests, client, upstream)
            self._spawn(self._forward_responses, upstream, client)

    def _take_cut(self, first: bytes) -> bool:
        with self._lock:
            if not first.startswith(self.method):
                return False
            self.matched += 1
            if self.matched % 2 == 0:
                return False
            self.cuts += 1
            return True

    def _forward_requests(self, client: socket.socket, upstream: socket.socket) -> None:
        forwarded, cutting = 0, None
        with suppress(OSError):
            while data := client.recv(64 * 1024):
                if cutting is None:
                    cutting = self._take_cut(data)
                if cutting and forwarded + len(data) >= self.after_bytes:
                    upstream.sendall(data[: self.after_bytes - forwarded])
                    self.before_cut()
                    break
                upstream.sendall(data)
                forwarded += len(data)
        for end in (upstream, client):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _forward_responses(self, upstream: socket.socket, client: socket.socket) -> None:
        with suppress(OSError):
            while data := upstream.recv(64 * 1024):
                client.sendall(data)
        with suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


@contextmanager
def cutting_proxy(upstream_port: int, **options) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port, **options)
    thread = threading.Thread(target=proxy.serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.close()
        thread.join(5)
