"""Error pages: the product's own unless DJANGO_DEBUG=1, production settings unless `make run`
says local, and a debug page that shows no credentials."""

import subprocess
import sys

import pytest
from django.test import Client

from tests.support.processes import ROOT, embedded_env, http_get, manage, web_server

SHOW_SETTINGS = "from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"
ENTRY_POINTS = {
    "asgi": f"import streamgate.asgi; {SHOW_SETTINGS}",
    "wsgi": f"import streamgate.wsgi; {SHOW_SETTINGS}",
    "celery": f"from streamgate.celery import app; app.loader.import_default_modules(); "
    f"{SHOW_SETTINGS}",
}


def test_make_run_answers_with_the_products_error_pages(tmp_path, logs_dir):
    """The local settings with no DJANGO_DEBUG, as `make run` starts them: no URLconf on a 404,
    no traceback or settings on a 500."""
    env = embedded_env(tmp_path, DJANGO_SETTINGS_MODULE="tests.support.error_settings")
    manage(env, "migrate", "--noinput")
    with web_server(env, logs_dir / "web.log") as base:
        status, body = http_get(f"{base}/no-such-page/")
        assert status == 404
        page = body.decode()
        assert "There is nothing at this address" in page
        assert "URLconf" not in page
        assert "api/v1/" not in page
        status, body = http_get(f"{base}/fails/")
        assert status == 500
        page = body.decode()
        assert "Something went wrong" in page
        assert "Traceback" not in page
        assert "this view fails on purpose" not in page
        assert "CELERY_BROKER_URL" not in page
    # The failure is in the log, not on the page.
    assert "this view fails on purpose" in (logs_dir / "web.log").read_text()


@pytest.mark.parametrize(("given", "debug"), [({}, "False"), ({"DJANGO_DEBUG": "1"}, "True")])
def test_local_debug_only_when_asked(tmp_path, given, debug):
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW_SETTINGS}"],
        cwd=ROOT,
        env=embedded_env(tmp_path, **given),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["streamgate.settings.local", debug]


def production_ready_env(tmp_path, **extra) -> dict[str, str]:
    """An environment that names no settings module, with what production requires."""
    env = embedded_env(
        tmp_path,
        DJANGO_SECRET_KEY="k3y-" + "x1y2z3" * 10,
        STREAMGATE_PUBLIC_URL="https://video.example.com",
        **extra,
    )
    env.pop("DJANGO_SETTINGS_MODULE")
    return env


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_servers_and_workers_default_to_production(tmp_path, entry_point):
    result = subprocess.run(
        [sys.executable, "-c", ENTRY_POINTS[entry_point]],
        cwd=ROOT,
        env=production_ready_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["streamgate.settings.production", "False"]


def test_manage_py_defaults_to_production_and_says_how_to_run_locally(tmp_path):
    env = production_ready_env(tmp_path)
    shown = manage(env, "shell", "-v", "0", "-c", SHOW_SETTINGS)
    assert shown.split() == ["streamgate.settings.production", "False"]
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "alice"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=streamgate.settings.local" in result.stderr


SECRETS = {
    "REDIS_URL": ("redis://:redis-pw-1@cache.internal:6379/0", "redis-pw-1"),
    "CELERY_BROKER_URL": ("redis://:broker-pw-2@cache.internal:6379/0", "broker-pw-2"),
    "CELERY_RESULT_BACKEND": ("redis://:results-pw-3@cache.internal:6379/0", "results-pw-3"),
    "SENTRY_DSN": ("https://sentrykey4@o1.ingest.sentry.io/5", "sentrykey4"),
    "CHAIN_RPC_URLS": ({"eip155:1": "https://eth.example/v2/rpckey5"}, "rpckey5"),
    "IPFS_PINNING_URL": ("https://pin:pin-pw-6@pins.example/psa?token=qtoken7", "pin-pw-6"),
    "DATABASES": (
        {"default": {"ENGINE": "x", "NAME": "postgres://app:db-pw-8@db.internal/sg"}},
        "db-pw-8",
    ),
}


@pytest.mark.django_db
def test_the_debug_page_masks_credentials_in_urls(settings):
    settings.ROOT_URLCONF = "tests.support.error_urls"
    settings.DEBUG = True
    for name, (value, _) in SECRETS.items():
        if name != "DATABASES":  # the test's own connection stays as it is
            setattr(settings, name, value)
    settings.REPLICA_DATABASES = SECRETS["DATABASES"][0]
    response = Client(raise_request_exception=False).get(
        "/fails/", HTTP_X_UPSTREAM="https://ops:header-pw-9@origin.example/"
    )
    assert response.status_code == 500
    page = response.content.decode()
    assert "this view fails on purpose" in page  # the debug page, with settings
    assert "REDIS_URL" in page
    for name, (_, secret) in SECRETS.items():
        assert secret not in page, name
    assert "qtoken7" not in page
    assert "header-pw-9" not in page
    # What is not a credential stays readable: the host, port and database number.
    assert "redis://********************@cache.internal:6379/0" in page
