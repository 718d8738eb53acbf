"""/metrics is for scrapers: the token or an allowed address in production, the laptop itself
under `make run`, nobody else."""

import subprocess
import sys
import urllib.request
from email.message import Message

import pytest
import yaml

from tests.support.processes import ROOT, embedded_env, manage, web_server

pytestmark = pytest.mark.django_db
TOKEN = "scrape-" + "t0k3n" * 8


@pytest.fixture
def production_shape(settings):
    """What production settings give /metrics: no allowed addresses, no token unless set."""
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = ""
    return settings


def test_closed_to_everyone_when_nothing_is_configured(client, production_shape):
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["reason"] == "metrics_forbidden"
    assert "METRICS_TOKEN" in response.json()["detail"]
    assert "streamgate_" not in response.content.decode()


def test_the_token_opens_it(client, production_shape):
    production_shape.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert missing.json()["reason"] == "metrics_token_required"
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403
    assert wrong.json()["reason"] == "metrics_token_invalid"
    allowed = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status_code == 200
    assert "streamgate_transcode_jobs" in allowed.content.decode()


def test_allowed_networks_need_no_token(client, production_shape):
    production_shape.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::1"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def scrape(url: str, token: str | None = None) -> tuple[int, Message, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def test_production_server_wants_the_token_from_its_file(tmp_path, logs_dir):
    """The production settings in a real uvicorn, the token given as METRICS_TOKEN_FILE (a
    Docker secret); the scraper sends it as Prometheus does (authorization: Bearer)."""
    token_file = tmp_path / "metrics_token"
    token_file.write_text(TOKEN + "\n")
    env = embedded_env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="streamgate.settings.production",
        DJANGO_SECRET_KEY="k3y-" + "x1y2z3" * 10,
        STREAMGATE_PUBLIC_URL="https://video.example.com",
        METRICS_TOKEN_FILE=str(token_file),
    )
    manage(env, "migrate", "--noinput")
    with web_server(env, logs_dir / "web.log") as base:
        status, headers, _ = scrape(f"{base}/metrics")
        assert status == 401
        assert headers.get("WWW-Authenticate") == 'Bearer realm="metrics"'
        assert scrape(f"{base}/metrics", "guessed")[0] == 403
        status, _, page = scrape(f"{base}/metrics", TOKEN)
        assert status == 200
        assert 'streamgate_transcode_jobs{state="failed"} 0.0' in page


def test_make_run_lets_the_laptop_itself_scrape(tmp_path, logs_dir):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--noinput")
    with web_server(env, logs_dir / "web.log") as base:
        status, _, page = scrape(f"{base}/metrics")
        assert status == 200
        assert "streamgate_queue_depth" in page


def test_a_malformed_allowed_address_stops_startup(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=embedded_env(tmp_path, METRICS_ALLOWED_IPS="10.0.0.0/8,not-an-address"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS: 'not-an-address' is not an IP address" in result.stderr


def test_compose_prometheus_scrapes_with_the_token_web_expects():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["web:8000"]}]
    assert job["authorization"]["type"] == "Bearer"
    prometheus = compose["services"]["prometheus"]
    (secret,) = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    # The secret Prometheus reads is the variable web checks against.
    assert compose["secrets"][secret] == {"environment": "METRICS_TOKEN"}
    assert compose["services"]["web"]["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
    mounted = [volume.split(":")[:2] for volume in prometheus["volumes"]]
    assert ["./deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"] in mounted
