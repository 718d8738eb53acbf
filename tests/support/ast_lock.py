"""One ast.parse at a time in the test process, on the CPython releases that need it.

Before 3.11.8 and 3.12.2, CPython kept the AST constructor's recursion depth in state shared by
all threads (python/cpython#106905, fixed by #113035): when two threads parse at once and the
GIL changes hands inside the constructor (a garbage collection that runs Python code is
enough), one parse fails with "SystemError: AST constructor recursion depth mismatch". In the
test process two threads do parse at once: pytest parses a test's source to show its failure
while a live server thread logs a traceback (3.11's traceback module parses each line it shows
for its ^^^ markers). That SystemError ended a whole run as an INTERNALERROR, hiding the failure
it was showing. Holding one lock around ast.parse (which pytest, traceback and inspect all call)
makes the two take turns; what is shown does not change."""

import ast
import functools
import sys
import threading

AFFECTED = sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2)
# A parse takes milliseconds. The bound only matters if a thread that holds the lock waits for
# one that wants it (a garbage collection's callback joining a thread): then the waiter parses
# without the lock rather than never.
WAIT_SECONDS = 5

_lock = threading.RLock()


def install() -> None:
    """Wrap ast.parse in the lock, where this interpreter needs it; idempotent."""
    if not AFFECTED or getattr(ast.parse, "one_at_a_time", False):
        return
    parse = ast.parse

    @functools.wraps(parse)
    def parse_one_at_a_time(*args, **kwargs):
        locked = _lock.acquire(timeout=WAIT_SECONDS)
        try:
            return parse(*args, **kwargs)
        finally:
            if locked:
                _lock.release()

    parse_one_at_a_time.one_at_a_time = True
    ast.parse = parse_one_at_a_time
