"""What every byte store shares: the protocol, the progress it reports, the errors it raises.

A store takes the request body as an iterator of byte blocks and reports durable progress
through ``on_durable``, so that the service can persist the offset as it goes; nothing is
reported before it is stored for good. A local disk that is full or read-only is
StorageUnavailable for every store (S3 spools its parts on local disk too).
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.content.storage import StorageUnavailable
from apps.uploads.models import Upload
from apps.uploads.protocol import Checksum
from streamgate.outages import DISK_ERRNOS


class ChecksumMismatch(Exception):
    """The chunk's digest differs from Upload-Checksum; the chunk was discarded."""


class IncomingMissing(Exception):
    """The received bytes are gone (disk wiped, multipart aborted): the upload cannot finish."""


class StoredBehindOffset(Exception):
    """Storage holds fewer bytes than the recorded offset; HEAD will report the real number."""


@dataclass
class Durable:
    """Bytes up to ``offset`` are stored for good; ``fields`` are Upload fields to persist."""

    offset: int
    fields: dict[str, Any] = field(default_factory=dict)


OnDurable = Callable[[Durable], None]
BeforeSave = Callable[[], None]


class Spliced(Protocol):
    """A block the kernel moves straight into a file (streamgate/streaming.py SocketBody), for
    stores that write files (``splices = True``); ``len()`` is the bytes it may still hold."""

    moved: int  # bytes that reached the file so far
    ended: bool  # the body ended early (the client left or went quiet, the server drains)

    def __len__(self) -> int: ...

    def splice_to(self, out: int, count: int) -> None: ...


class ByteStore(Protocol):
    kind: str

    def begin(self, upload: Upload) -> dict[str, Any]: ...

    def append(
        self,
        upload: Upload,
        blocks: Iterable[bytes],
        *,
        checksum: Checksum | None,
        on_durable: OnDurable,
        before_save: BeforeSave,
    ) -> Durable:
        """Store ``blocks`` after ``upload.offset``; call ``before_save`` before any write that
        is not one of ``blocks`` (a part, a tail), so a writer that lost its lease stops."""
        ...

    def stored_offset(self, upload: Upload) -> int: ...

    def assemble(self, upload: Upload) -> None: ...

    def discard(self, upload: Upload) -> None: ...


@contextmanager
def disk_errors(doing: str) -> Iterator[None]:
    """Turn a local disk that is full or read-only into StorageUnavailable (any other OSError
    is ours to fix, and stays one)."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_ERRNOS:
            raise
        raise StorageUnavailable(f"disk: could not {doing}: {error.strerror}") from error
