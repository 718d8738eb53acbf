"""A watch on pytest-django's live server, for the browser tests (tests/web/conftest.py).

The live server is a thread of the test process, and what it does outlives the test that caused
it unless someone waits: a page's last beacon (sent on pagehide, which Playwright reports as no
request at all) reached it while pytest-django flushed the test's database, deadlocked with the
flush (whose failure was the test's error) or came back once the database was closed to the
server again ("Database access not allowed": a 500, only a line in the log). This watch counts
the connections the server has accepted and not yet closed, so that a test can wait until its
pages' requests are all answered; and it keeps every 500 it answered, every exception that
escaped Django's handler and every request that arrived while no test was running, for the test
to fail on."""

import logging
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable

from django.core.servers.basehttp import ThreadedWSGIServer, is_broken_pipe_error


class LiveServerWatch:
    """The live server's open connections and its problems, for the test that is running."""

    def __init__(self, server: ThreadedWSGIServer) -> None:
        self._queue = select.poll()  # poll, not select: any descriptor number
        self._queue.register(server.socket, select.POLLIN)
        self._changed = threading.Condition()
        self._connections = 0
        self._test: str | None = None
        self._last_test = "the session's start"
        self._problems: list[str] = []
        self._serving = threading.local()

    @classmethod
    def install(cls, server: ThreadedWSGIServer) -> "LiveServerWatch":
        """Watch ``server`` (the live server thread's, already serving) from now on."""
        watch = cls(server)
        accept, shutdown, handle_error = (
            server.get_request,
            server.shutdown_request,
            server.handle_error,
        )

        # A connection counts from just before its accept to the end of shutdown_request,
        # which every path of socketserver calls last (Django closes the thread's database
        # connections there). Counted before it leaves the queue, it is never neither queued
        # nor counted for wait_idle, which looks at both under the lock.
        def get_request():
            with watch._changed:
                watch._connections += 1
            try:
                return accept()
            except BaseException:
                watch._closed()
                raise

        def shutdown_request(request):
            try:
                shutdown(request)
            finally:
                watch._closed()

        def handle_error_and_keep(request, client_address):
            if not is_broken_pipe_error():  # a browser that left: not the server's fault
                error = sys.exc_info()[1]
                watch._keep(f"{type(error).__name__} outside Django's handler: {error}")
            handle_error(request, client_address)

        server.get_request = get_request
        server.shutdown_request = shutdown_request
        server.handle_error = handle_error_and_keep
        server.set_app(watch._wsgi(server.get_app()))
        logging.getLogger("django.request").addHandler(_ServerErrors(watch))
        return watch

    def test_started(self, name: str) -> list[str]:
        """A test begins; returns what went wrong since the last test_finished."""
        with self._changed:
            self._test = name
            problems, self._problems = self._problems, []
        return problems

    def test_finished(self, timeout: float = 30) -> list[str]:
        """Wait until the server has answered every request it accepted or has queued (a
        closed browser context sends no more), then end the test; returns what went wrong
        during it, the requests still unanswered after ``timeout`` seconds among them."""
        if not self.wait_idle(timeout):
            self._keep(f"{self._connections} connection(s) still open after {timeout} s")
        with self._changed:
            self._last_test, self._test = self._test or self._last_test, None
            problems, self._problems = self._problems, []
        return problems

    def wait_idle(self, timeout: float) -> bool:
        """True once no connection is open or waiting to be accepted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._connections or self._waiting_to_be_accepted():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Woken by a connection's end; a queued one shows only to poll, hence the
                # short wait (the serving thread accepts it within microseconds).
                self._changed.wait(min(remaining, 0.005))
        return True

    def _closed(self) -> None:
        with self._changed:
            self._connections -= 1
            self._changed.notify_all()

    def _waiting_to_be_accepted(self) -> bool:
        return bool(self._queue.poll(0))

    def _keep(self, problem: str) -> None:
        with self._changed:
            when = f"during {self._test}" if self._test else f"after {self._last_test}"
            self._problems.append(f"{problem} ({when})")

    def _wsgi(self, app: Callable) -> Callable:
        watch = self

        def watched(environ: dict, start_response: Callable) -> Iterable[bytes]:
            request = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
            if watch._test is None:
                watch._keep(f"{request} reached the live server while no test was running")
            watch._serving.request, watch._serving.answered = request, None
            try:
                return _Closing(app(environ, start_response), watch, request)
            except Exception as error:
                watch._serving.request = None
                watch._keep(f"{request}: {type(error).__name__} outside Django's handler")
                raise

        return watched


class _Closing:
    """A response whose iteration and close() (Django's request_finished, which closes the
    database connection) are watched too."""

    def __init__(self, response: Iterable[bytes], watch: LiveServerWatch, request: str) -> None:
        self._response, self._watch, self._request = response, watch, request

    def __iter__(self):
        try:
            yield from self._response
        except Exception as error:
            self._watch._keep(f"{self._request}: {type(error).__name__} sending the response")
            raise

    def close(self) -> None:
        try:
            close = getattr(self._response, "close", None)
            if close is not None:
                close()
        except Exception as error:
            self._watch._keep(f"{self._request}: {type(error).__name__} closing the response")
            raise
        finally:
            self._watch._serving.request = None


class _ServerErrors(logging.Handler):
    """django.request's 500s, from the live server's threads only (a test client's 500 raises
    in its test anyway; a 503 is an answer, not a bug)."""

    def __init__(self, watch: LiveServerWatch) -> None:
        super().__init__(level=logging.ERROR)
        self._watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        serving = self._watch._serving
        request = getattr(serving, "request", None)
        # One 500 under /api/ is logged twice: where the exception was caught, and again once
        # ApiErrorMiddleware has put it in JSON (a new response, not marked as logged). The
        # first, with the exception, is kept.
        if request and getattr(record, "status_code", None) == 500 and serving.answered != 500:
            serving.answered = 500
            error = record.exc_info[1] if record.exc_info else None
            cause = f": {type(error).__name__}: {error}" if error else ""
            self._watch._keep(f"{request} answered 500{cause}")
