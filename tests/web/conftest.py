"""Browser tests: Debian's chromium driven by Playwright, against real servers.

Chromium comes from the project's own files (tests/browser.sh, run by `make test`); where it is
missing and cannot be installed, these tests skip and say why. Screenshots of the pages land in
test-results/screenshots/ (README shows copies from docs/screenshots/)."""

import functools
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "test-results" / "screenshots"
# A third-party player page (tests/web/player_page/) and the players it loads, from npm.
PLAYER_PAGE = Path(__file__).parent / "player_page"
PLAYER_FILES = {
    "hls.min.js": ROOT / "node_modules/hls.js/dist/hls.min.js",
    "dash.all.min.js": ROOT / "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
    "shaka-player.compiled.js": ROOT / "node_modules/shaka-player/dist/shaka-player.compiled.js",
}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (tests/browser.sh could not install it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django then refuses database
    # calls from it unless told this thread is not async code (Playwright's advice for Django).
    # Module scope: the loop, and this permission, end with the module's tests.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def live_server(live_server):
    """pytest-django's live server, watched (tests/support/live_server.py)."""
    from tests.support.live_server import LiveServerWatch

    live_server.watch = LiveServerWatch.install(live_server.thread.httpd)
    return live_server


@pytest.fixture(autouse=True)
def _live_server_answers_within_its_test(request):
    """A test on the live server ends only once the server has answered everything its pages
    sent (the page fixture has left them by then; this fixture's teardown runs after theirs
    and before pytest-django flushes the database); and it fails if the server answered a 500,
    an exception escaped Django's handler, or a request arrived while no test was running."""
    if "live_server" not in request.fixturenames:
        yield
        return
    watch = request.getfixturevalue("live_server").watch
    earlier = watch.test_started(request.node.nodeid)
    assert not earlier, f"The live server went wrong before this test: {earlier}"
    yield
    problems = watch.test_finished()
    assert not problems, f"The live server went wrong: {problems}"


@pytest.fixture
def new_context(browser):
    """Opens browser contexts for a test, each left (``leave``) at the test's end."""
    contexts = []

    def make(**options):
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 860}, **options})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        leave(context)


def leave(context) -> None:
    """Leave a context's pages as a person leaves a site, then close it: each page goes to
    about:blank, so its pagehide handlers run while the browser can still send what they send
    (the player's last beacon), rather than whenever closing the context gets to them. Waiting
    for those requests is the live server's side (_live_server_answers_within_its_test):
    Playwright reports no request that a page sends on its way out. Leaving twice is harmless."""
    try:
        for page in context.pages:
            page.goto("about:blank")
    finally:
        context.close()


@pytest.fixture
def page(new_context):
    context = new_context()
    errors: list[str] = []
    violations: list[str] = []
    # Every page must pass the Content-Security-Policy: report each violation back here.
    context.expose_function("sgCspViolation", lambda text: violations.append(text))
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.sgCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI}"
        " (${e.sourceFile || 'no source'})`));"
    )
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    leave(context)  # the errors of its pagehide handlers count too
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not violations, f"Content-Security-Policy violations: {violations}"


def wait_until(page, expression: str, timeout: float = 30) -> None:
    """Poll ``expression`` in the page until it is truthy. (Playwright's wait_for_function
    compiles its predicate with eval, which our Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.wait_for_timeout(400)  # let the progress bars' CSS transitions finish
    page.screenshot(path=str(path), full_page=True)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def player_site(tmp_path_factory):
    """The third-party page: a plain static server on another origin (localhost, own port)
    with tests/web/player_page/ and the players of PLAYER_FILES."""
    folder = tmp_path_factory.mktemp("player-site")
    for name in ("index.html", "harness.js"):
        shutil.copy(PLAYER_PAGE / name, folder / name)
    for name, source in PLAYER_FILES.items():
        if not source.exists():
            pytest.fail(f"{source} is missing: run `npm ci` (package.json pins the players)")
        shutil.copy(source, folder / name)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
