"""HTTP Range requests (RFC 9110 §14): which bytes of a file to send, and reading them."""

import os
import re

# ASCII digits only, at most 19 (past any file size; longer positions are ignored as malformed).
_SINGLE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")


class RangeNotSatisfiable(Exception):
    """The range starts past the end of the file (answered 416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) the Range ``header`` asks of a ``size``-byte file, or None to
    send the whole file (no header, a malformed one, or several ranges: RFC 9110 lets a
    server ignore a Range it does not support)."""
    if not header:
        return None
    match = _SINGLE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable
        return (max(0, size - suffix), size - 1) if size else _unsatisfiable()
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def _unsatisfiable():
    raise RangeNotSatisfiable


class TooLarge(Exception):
    """The file is larger than the caller reads into memory."""


def read_span(
    path: str, header: str | None, *, head: bool, limit: int | None = None
) -> tuple[int, tuple[int, int] | None, bytes]:
    """(file size, the inclusive span sent or None for the whole file, its bytes; none for
    ``head``) of the file at ``path``. Raises OSError (missing, unreadable), RangeNotSatisfiable,
    or TooLarge past ``limit`` bytes."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if limit is not None and size > limit:
            raise TooLarge
        span = byte_range(header, size)
        start, end = span if span else (0, size - 1)
        body = b""
        if not head:
            handle.seek(start)
            body = handle.read(max(0, end - start + 1))
    return size, span, body
