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


def test_several_messages_in_one_wait_until_taken_enough():
    sent = iter(range(10))

    async def receive():
        return {"type": "http.request", "n": next(sent)}

    taken = []

    def take(message):
        taken.append(message["n"])
        return len(taken) == 4

    assert asyncio.run(shutdown.receive_until(receive, 5, take)) is None
    assert taken == [0, 1, 2, 3]
    assert not shutdown._readers


def test_the_idle_timeout_is_per_message_not_per_wait():
    """A client that sends a message every 30 ms is not idle, though the wait lasts 300 ms."""

    async def receive():
        await asyncio.sleep(0.03)
        return {"type": "http.request"}

    taken = []

    def take(message):
        taken.append(message)
        return len(taken) == 10

    assert asyncio.run(shutdown.receive_until(receive, 0.1, take)) is None
    assert len(taken) == 10


def test_a_drain_mid_wait_keeps_what_was_taken():
    async def scenario():
        count = 0

        async def receive():
            nonlocal count
            count += 1
            if count == 3:
                threading.Thread(target=shutdown.drain).start()
            if count > 3:
                await asyncio.Event().wait()  # the client goes quiet; the drain wakes us
            return {"type": "http.request", "n": count}

        taken = []
        end = await shutdown.receive_until(receive, 10, lambda m: taken.append(m["n"]) or False)
        await asyncio.sleep(0)  # no cancellation is left pending for the caller
        return end, taken

    end, taken = asyncio.run(scenario())
    assert end == "drain"
    assert taken == [1, 2, 3]


def test_a_silent_client_mid_wait_times_out():
    async def scenario():
        count = 0

        async def receive():
            nonlocal count
            count += 1
            if count > 2:
                await asyncio.Event().wait()
            return {"type": "http.request"}

        return await shutdown.receive_until(receive, 0.05, lambda message: False)

    assert asyncio.run(scenario()) == "timeout"


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
