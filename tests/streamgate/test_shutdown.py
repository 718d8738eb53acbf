"""The web process's drain (streamgate/shutdown.py): body readers end their wait when the
process is told to stop, and the signal handler is put in front of a server's own, never in
place of Python's defaults."""

import asyncio
import os
import signal
import threading

import pytest

from streamgate import shutdown


@pytest.fixture(autouse=True)
def _fresh_drain(monkeypatch):
    monkeypatch.setattr(shutdown, "_draining", threading.Event())
    monkeypatch.setattr(shutdown, "_installed", False)


def test_a_message_that_arrives_is_returned():
    async def receive():
        return {"type": "http.request", "body": b"x"}

    message = asyncio.run(shutdown.receive_unless_draining(receive, timeout=5))
    assert message == {"type": "http.request", "body": b"x"}


def test_a_reader_waiting_for_its_client_is_woken_by_a_drain():
    async def silent():
        await asyncio.Event().wait()

    async def scenario():
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, threading.Thread(target=shutdown.drain).start)  # another thread
        started = loop.time()
        message = await shutdown.receive_unless_draining(silent, timeout=10)
        return message, loop.time() - started

    message, waited = asyncio.run(scenario())
    assert message is None
    assert waited < 1


def test_another_cancellation_is_not_taken_for_a_drain():
    """The server's own cancellation (its grace period ran out) ends the reader as before."""

    async def silent():
        await asyncio.Event().wait()

    async def scenario():
        reader = asyncio.ensure_future(shutdown.receive_unless_draining(silent, timeout=10))
        await asyncio.sleep(0.01)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert not shutdown._readers

    asyncio.run(scenario())
    assert not shutdown.draining()


def test_nothing_is_read_once_draining():
    shutdown.drain()

    async def receive():
        raise AssertionError("read after the drain")

    assert asyncio.run(shutdown.receive_unless_draining(receive, timeout=5)) is None


def test_a_silent_client_times_out():
    async def silent():
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(shutdown.receive_unless_draining(silent, timeout=0.05))


def test_the_handler_goes_in_front_of_the_servers_own():
    seen = []
    originals = {signum: signal.getsignal(signum) for signum in shutdown.SIGNALS}
    try:
        for signum in shutdown.SIGNALS:
            signal.signal(signum, lambda signum, frame: seen.append(signum))
        shutdown.install()
        shutdown.install()  # once only
        os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.draining()
        assert seen == [signal.SIGTERM]  # the server's handler ran too, once
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler)


def test_without_a_servers_handler_nothing_is_installed():
    originals = {signum: signal.getsignal(signum) for signum in shutdown.SIGNALS}
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        shutdown.install()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert not shutdown._installed
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler)
