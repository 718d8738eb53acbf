"""Tripwires for what a media probe or encode must never touch: a TCP listener that records every
connection made to it, and an inotify watch that records every file opened in a folder.

Both observe from outside FFmpeg (the kernel sees the open, the socket sees the connect), so a
test asserts what really happened, not what our code believes it asked for.
"""

import ctypes
import os
import socket
import struct
import threading
from pathlib import Path

IN_ACCESS = 0x00000001
IN_OPEN = 0x00000020
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class TcpListener:
    """A real listener on 127.0.0.1: ``connections`` counts every accepted connection and
    ``requests`` keeps the first bytes each sent (an HTTP request line and User-Agent)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self.requests)

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.socket.accept()
            except OSError:  # closed
                return
            with peer:
                peer.settimeout(2)
                try:
                    self.requests.append(peer.recv(4096))
                except OSError:
                    self.requests.append(b"")

    def close(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.socket.close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OpenWatch:
    """Records the names of files opened or read in ``folder`` (by any process) from now on."""

    def __init__(self, folder: Path) -> None:
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self.fd, str(folder).encode(), IN_OPEN | IN_ACCESS) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")

    def opened(self) -> list[str]:
        """Every event so far, as file names ("" for the folder itself)."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return names
            offset = 0
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                names.append(data[offset : offset + length].rstrip(b"\0").decode())
                offset += length

    def close(self) -> None:
        os.close(self.fd)
