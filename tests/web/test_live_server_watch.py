"""The watch on the browser tests' live server (tests/support/live_server.py): a test ends only
once the server has answered what its pages sent, even what the browser gave up on when the page
was left (a player's last beacon used to reach the server during pytest-django's flush: a
deadlock that failed the flush, or a 500 once the database was closed to the server again); and
a 500 the server answered, or a request that reached it while no test ran, is reported against
a test instead of passing as a log line."""

import urllib.error
import urllib.request

import pytest

from tests.support import slow_urls
from tests.web.conftest import leave

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.urls("tests.support.slow_urls")
def test_a_test_ends_once_the_server_has_answered_what_its_page_sent(live_server, page, request):
    slow_urls.STARTED.clear()
    slow_urls.FINISHED.clear()
    page.goto(f"{live_server.url}/healthz")
    page.evaluate("fetch('/slow/', {keepalive: true}); null")  # not awaited
    assert slow_urls.STARTED.wait(10)

    # What the fixtures do at every test's end, before the database is flushed.
    leave(page.context)  # the browser gives up on the answer
    problems = live_server.watch.test_finished()
    finished = slow_urls.FINISHED.is_set()
    live_server.watch.test_started(request.node.nodeid)  # this test's end is checked as usual

    assert finished
    assert problems == []


@pytest.mark.urls("tests.support.failing_urls")
def test_a_500_of_the_live_server_is_reported_with_its_request(live_server, request):
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"{live_server.url}/api/v1/broken/django/", timeout=10)
    assert answer.value.code == 500

    problems = live_server.watch.test_finished()
    live_server.watch.test_started(request.node.nodeid)  # this test's end is checked as usual
    assert problems == [
        "GET /api/v1/broken/django/ answered 500: RuntimeError: a bug in a plain Django view"
        f" (during {request.node.nodeid})"
    ]


def test_a_request_while_no_test_runs_is_reported(live_server, request):
    assert live_server.watch.test_finished() == []
    with urllib.request.urlopen(f"{live_server.url}/healthz", timeout=10) as answer:
        assert answer.status == 200

    problems = live_server.watch.test_started(request.node.nodeid)
    assert problems == [
        "GET /healthz reached the live server while no test was running"
        f" (after {request.node.nodeid})"
    ]
