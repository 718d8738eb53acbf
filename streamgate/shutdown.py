"""The web process's graceful shutdown: on SIGTERM (or SIGINT) streamed upload bodies end at the
next chunk, so that each tus PATCH in flight commits the bytes it stored and answers.

uvicorn, on SIGTERM, stops accepting connections and waits for the requests in flight (at most
``--timeout-graceful-shutdown`` seconds, then cancels them), but tells the application nothing:
the lifespan's shutdown comes after that wait, and we run with ``--lifespan off``. A client that
streams a large PATCH body would keep the process alive until its body ends, and past the timeout
the request is cancelled with its received bytes stored but never committed and its write lease
left to run out. uvicorn has no hook for this, so this small module puts a handler in front of
the server's own for those signals: it marks the process as draining and wakes the body readers
(streamgate/streaming.py), which end the body where they are; the view then commits what it
stored and answers (204 with the committed Upload-Offset), and the client resumes from there
against another server.
"""

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_draining = threading.Event()
# Body readers waiting for their client (tasks on the server's loop), and those drain() woke.
_readers: set[asyncio.Task] = set()
_woken: set[asyncio.Task] = set()


def draining() -> bool:
    """Whether this process was told to stop: bodies streamed from now on end at once."""
    return _draining.is_set()


def drain() -> None:
    """Start draining (idempotent): every body reader waiting for its client ends its body.
    Safe to call from a signal handler or any thread."""
    _draining.set()
    for reader in list(_readers):
        reader.get_loop().call_soon_threadsafe(_wake, reader)


def _wake(reader: asyncio.Task) -> None:
    # On the reader's loop: it is suspended in its wait (or has left it, and then sees
    # draining() before its next one).
    if reader in _readers and reader not in _woken and not reader.done():
        _woken.add(reader)
        reader.cancel()


async def receive_until(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    timeout: float,
    take: Callable[[dict[str, Any]], bool],
) -> str | None:
    """Hand the server's ASGI messages to ``take`` until it returns True (None is returned),
    the process drains (``"drain"``: nothing is lost by giving up the wait, uvicorn keeps the
    bytes) or nothing comes for ``timeout`` seconds (``"timeout"``).

    One wait for several messages: the reader is registered and its idle timeout set once,
    then moved at each message, rather than per message (a quarter of a MiB each with uvicorn;
    per message, that bookkeeping was 8% of a busy upload server's Python time). A drain wakes
    the waiting task by cancelling it, as ``asyncio.timeout`` does, and takes the cancellation
    back (``uncancel``): cheaper than racing every receive against a drain future."""
    reader = asyncio.current_task()
    if reader is None:  # unreachable: a coroutine awaited on a loop runs in a task
        raise RuntimeError("receive_until must run in an asyncio task")
    loop = reader.get_loop()
    _readers.add(reader)  # before the check: a drain in between finds and wakes it
    if _draining.is_set():
        _readers.discard(reader)
        return "drain"
    try:
        async with asyncio.timeout(timeout) as idle:
            while not take(await receive()):
                idle.reschedule(loop.time() + timeout)
    except TimeoutError:
        return "timeout"
    except asyncio.CancelledError:
        if reader not in _woken:
            raise  # someone else's cancellation (the server's grace period ran out)
        _woken.discard(reader)
        if reader.uncancel() > 0:
            raise  # someone else cancelled it too: theirs stands
        return "drain"
    finally:
        _readers.discard(reader)
    if reader in _woken:  # the last message came as the drain did: keep it, take the wake back
        _woken.discard(reader)
        reader.uncancel()
    return None


async def receive_unless_draining(
    receive: Callable[[], Awaitable[dict[str, Any]]], timeout: float
) -> dict[str, Any] | None:
    """The server's next ASGI message, or None once the process drains. TimeoutError when
    nothing came within ``timeout`` seconds."""
    got: list[dict[str, Any]] = []
    end = await receive_until(receive, timeout, lambda message: got.append(message) or True)
    if end == "timeout":
        raise TimeoutError
    return got[0] if got else None


_installed = False


def install() -> None:
    """Put drain() in front of the server's handlers for SIGTERM and SIGINT, once they exist.

    uvicorn imports the application before it installs its handlers (and restores the old ones
    when it stops), so the ASGI handler calls this at each request until it took: the first
    request on the server's event loop, in the main thread, finds uvicorn's handlers. Nothing
    happens where no server handles these signals (Python's defaults: a test process, a
    management command) or outside the main thread."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        previous = signal.getsignal(signum)
        if getattr(previous, "drains", False):
            continue
        if not callable(previous) or previous is signal.default_int_handler:
            return  # no server's handler yet: try again at the next request
        signal.signal(signum, _chained(previous))
    _installed = True


def _chained(previous: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    def handler(signum: int, frame: Any) -> Any:
        drain()  # no logging here: a signal handler may interrupt the logging module itself
        return previous(signum, frame)

    handler.drains = True  # type: ignore[attr-defined]
    return handler
