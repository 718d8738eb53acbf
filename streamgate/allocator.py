"""glibc's allocator, set for the web process's request bodies.

An upload's bytes reach Python as objects of a quarter of a MiB each: uvloop's read, the HTTP
parser's slice, uvicorn's ``bytearray`` and the ``bytes`` it hands over. glibc serves blocks
that size with fresh ``mmap`` pages, or from the top of its heap, which it gives back to the
kernel as soon as more than twice the last such block is free there. Either way nearly every
block is new memory, and every 4 KiB page of it costs a page fault and a zeroing before the
copy into it: with four clients uploading 5 MiB chunks, the server's CPU per PATCH went to the
kernel as much as to Python (tests/benchmarks/upload.py; measured by page faults and CPU time of
the server process, README "Uploads").

``tune()`` fixes the two thresholds instead: blocks under ``MMAP_THRESHOLD`` come from the heap,
and freed heap memory is kept until more than ``TRIM_THRESHOLD`` of it is free at the top, so
the same pages serve the next request's bytes. The cost is up to that much memory kept
mapped between bursts in each allocator arena that served such blocks (the event loop's
thread allocates nearly all of them); nothing else changes (larger blocks are still mapped
and unmapped on their own).

An operator who sets glibc's allocator themselves (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``) keeps their
choice, and a C library other than glibc (musl) is left alone.

Why by hand: no library sets these; it is two ``mallopt(3)`` calls through ctypes.
"""

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
_OPERATORS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune() -> bool:
    """Set glibc's mmap and trim thresholds for this process; whether they were set."""
    if any(name in os.environ for name in _OPERATORS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False  # not glibc: its mallopt, if any, means something else or nothing
    done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    done = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    if not done:  # glibc refuses only values out of range, which these are not
        logger.warning("glibc refused the allocator thresholds")
    return done
