"""The client address behind every rate limit, the password throttle, log records and audit rows:
the socket peer, or with TRUSTED_PROXIES the right-most X-Forwarded-For hop that is not a
trusted proxy; never whatever a client writes in a header. Through Django's test client and
through uvicorn started exactly as the Procfile starts it."""

import logging
import re
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from streamgate.client_address import client_address, trusted_networks
from streamgate.observability import RequestIdFilter
from tests.factories import StaffFactory
from tests.support.processes import BIN, ROOT, embedded_env, free_port, spawned, wait_for_port

NONCE = "/api/v1/auth/siwe/nonce/"
PASSWORD = "pass-word-123"


def decide(peer: str, forwarded_for: str, *trusted: str) -> str:
    return client_address(
        peer=peer, forwarded_for=forwarded_for, trusted=trusted_networks(tuple(trusted))
    )


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        ("203.0.113.9", "1.1.1.1", (), "203.0.113.9"),  # no proxy trusted: the header is noise
        ("203.0.113.9", "1.1.1.1", ("10.0.0.0/8",), "203.0.113.9"),  # peer is not a proxy
        ("10.0.0.2", "1.1.1.1, 198.51.100.7", ("10.0.0.0/8",), "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1,198.51.100.7 , 10.9.9.9", ("10.0.0.0/8",), "198.51.100.7"),
        ("10.0.0.2", "10.1.1.1, 10.2.2.2", ("10.0.0.0/8",), "10.1.1.1"),
        ("10.0.0.2", "", ("10.0.0.0/8",), "10.0.0.2"),  # the proxy's own request
        ("10.0.0.2", "1.1.1.1, not-an-ip", ("10.0.0.0/8",), "10.0.0.2"),  # stops at a bad hop
        ("10.0.0.2", "1.1.1.1, 198.51.100.7:5678", ("10.0.0.0/8",), "198.51.100.7"),
        ("::1", "2001:db8::7", ("::1",), "2001:db8::7"),
        ("::1", "[2001:db8::7]:443", ("::1/128",), "2001:db8::7"),
        ("::ffff:10.0.0.2", "198.51.100.7", ("10.0.0.2",), "198.51.100.7"),  # v4-mapped peer
        ("", "198.51.100.7", ("10.0.0.0/8",), ""),  # no socket address (a unix socket)
    ],
)
def test_the_right_most_untrusted_hop_is_the_client(peer, forwarded_for, trusted, expected):
    assert decide(peer, forwarded_for, *trusted) == expected


def test_a_bad_trusted_proxy_entry_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.300'"):
        trusted_networks(("10.0.0.0/8", "10.0.0.300"))


@pytest.fixture
def signin_rate(monkeypatch):
    """The shipped sign-in rate (the test settings raise it), with empty counters."""
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"signin": "60/min"})
    cache.delete_pattern("throttle_*")
    yield
    cache.delete_pattern("throttle_*")


def nonce(forwarded_for: str | None = None, remote_addr: str = "127.0.0.1") -> int:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return Client(REMOTE_ADDR=remote_addr).post(NONCE, **extra).status_code


@pytest.mark.django_db
def test_the_61st_nonce_is_refused_whatever_x_forwarded_for_says(signin_rate):
    assert [nonce(f"10.9.0.{n}") for n in range(60)] == [201] * 60
    assert nonce("10.9.1.1") == 429
    assert nonce("10.9.1.2, 198.51.100.7") == 429
    assert nonce() == 429
    assert nonce(remote_addr="127.0.0.2") == 201  # another client


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_counted(signin_rate, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    codes = [nonce(f"192.0.2.{n}, 198.51.100.7, 10.1.1.{n}") for n in range(60)]
    assert codes == [201] * 60
    assert nonce("203.0.113.50, 198.51.100.7") == 429  # whatever it wrote on the left
    assert nonce("198.51.100.8") == 201  # another client behind the same proxy
    assert nonce() == 201  # the proxy itself
    assert nonce("198.51.100.7", remote_addr="203.0.113.1") == 201  # not through the proxy


@pytest.mark.django_db
def test_log_records_and_audit_rows_name_the_decided_client(settings):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())
    logging.getLogger("axes").addHandler(handler)
    try:
        forged = {"HTTP_X_FORWARDED_FOR": "198.51.100.66"}
        Client().post("/signin/", {"username": "nobody", "password": "x"}, **forged)
        settings.TRUSTED_PROXIES = ["127.0.0.1"]
        Client().post("/signin/", {"username": "nobody", "password": "x"}, **forged)
    finally:
        logging.getLogger("axes").removeHandler(handler)
    failures = [r for r in records if "login failure" in r.getMessage()]
    assert [r.client_address for r in failures] == ["127.0.0.1", "198.51.100.66"]
    rows = AccessAttempt.objects.order_by("id").values_list("ip_address", flat=True)
    assert list(rows) == ["127.0.0.1", "198.51.100.66"]


def test_no_uvicorn_command_rewrites_the_client_from_headers():
    """uvicorn would believe X-Forwarded-For from 127.0.0.1 by default, and from anyone with
    --forwarded-allow-ips "*": every way we start it leaves the decision to Django."""
    procfile_web = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    compose = (ROOT / "compose.yaml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    start_web = (ROOT / "tests" / "support" / "processes.py").read_text()
    for name, text in [
        ("Procfile", procfile_web),
        ("compose.yaml", compose),
        ("Dockerfile", dockerfile),
        ("processes.py", start_web),
    ]:
        assert "--no-proxy-headers" in text, name
        assert "forwarded-allow-ips" not in text, name
        assert not re.search(r"""["\s]--proxy-headers""", text), name


# --- through uvicorn, started as `make run` starts it ------------------------------------------


def post(url: str, data: dict | None = None, headers: dict | None = None, opener=None) -> int:
    request = urllib.request.Request(
        url, method="POST", data=urlencode(data or {}).encode(), headers=headers or {}
    )
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class KeepRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the answer (302: signed in), not a page to fetch."""

    def redirect_request(self, *args, **kwargs):
        return None


def admin_login(base: str, username: str, password: str, forwarded_for: str) -> int:
    """A browser's admin sign-in: the form (for its CSRF token), then the POST."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar()), KeepRedirects
    )
    with opener.open(f"{base}/admin/login/", timeout=20) as page:
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read()).group(1)
    form = {"csrfmiddlewaretoken": token.decode(), "username": username, "password": password}
    headers = {"X-Forwarded-For": forwarded_for, "Referer": f"{base}/admin/login/"}
    return post(f"{base}/admin/login/", form, headers, opener)


@pytest.fixture
def web_env(tmp_path, signin_rate, settings) -> dict[str, str]:
    """A web process on the test database and Redis with the shipped settings (local.py: the
    shipped rates and password limits), and a staff account 'demo' whose password it can check
    quickly (a PBKDF2 hash of few rounds: the test settings hash with MD5, which it lacks)."""
    db = settings.DATABASES["default"]
    env = embedded_env(
        tmp_path / "var",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
    )
    env["PATH"] = f"{BIN}:{env['PATH']}"  # the Procfile names uvicorn, as honcho runs it
    hasher = PBKDF2PasswordHasher()
    demo = StaffFactory(username="demo")
    demo.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    demo.save(update_fields=["password"])
    return env


def procfile_web(env: dict[str, str], log, **extra: str):
    """The Procfile's web line, run by a shell as honcho runs it, on a free port."""
    command = next(
        line.split(":", 1)[1].strip()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    port = free_port()
    env = {**env, "WEB_PORT": str(port), "HOST": "127.0.0.1", **extra}
    return port, spawned(["bash", "-c", f"exec {command}"], env=env, log=log)


@pytest.mark.django_db(transaction=True)
def test_through_uvicorn_a_forged_header_neither_resets_a_limit_nor_opens_an_account(
    web_env, logs_dir
):
    port, server = procfile_web(web_env, logs_dir / "web.log")
    with server as process:
        wait_for_port(port, timeout=30, process=process, log=logs_dir / "web.log")
        base = f"http://127.0.0.1:{port}"
        forged = [
            post(f"{base}{NONCE}", headers={"X-Forwarded-For": f"10.9.0.{n}"}) for n in range(61)
        ]
        assert forged == [201] * 60 + [429]
        assert post(f"{base}{NONCE}") == 429

        spellings = ["demo", " demo", "\tdemo", "ｄｅｍｏ", "DEMO"]
        failures = [
            admin_login(base, spellings[n % 5], f"guess-{n}", f"10.8.0.{n}") for n in range(10)
        ]
        assert failures == [200] * 9 + [429]
        assert admin_login(base, " demo", PASSWORD, "10.8.1.1") == 429
        assert admin_login(base, "demo", PASSWORD, "10.8.1.2") == 429
    log = (logs_dir / "web.log").read_text()
    assert "10.9.0." not in log  # the access log names the socket peer
    assert "10.8." not in log
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db(transaction=True)
def test_through_uvicorn_behind_a_trusted_proxy_the_client_is_counted(web_env, logs_dir):
    port, server = procfile_web(web_env, logs_dir / "web.log", TRUSTED_PROXIES="127.0.0.1")
    with server as process:
        wait_for_port(port, timeout=30, process=process, log=logs_dir / "web.log")
        base = f"http://127.0.0.1:{port}"
        codes = [
            post(f"{base}{NONCE}", headers={"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.7"})
            for n in range(61)
        ]
        assert codes == [201] * 60 + [429]
        assert post(f"{base}{NONCE}", headers={"X-Forwarded-For": "198.51.100.8"}) == 201
        assert post(f"{base}{NONCE}") == 201  # the proxy's own requests are its own
        assert admin_login(base, "demo", PASSWORD, "198.51.100.7") == 302
