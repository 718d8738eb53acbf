"""compose.yaml cannot run here (no Docker engine), so its wiring is checked as data."""

import re

import yaml

from tests.support.nginx import placeholders
from tests.support.processes import ROOT

QUEUES = {"uploads", "transcode", "chain", "webhooks", "default"}


def load() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_whole_stack():
    services = load()["services"]
    expected = {
        "postgres", "redis", "minio", "minio-init", "migrate", "web", "beat", "flower", "nginx",
    }  # fmt: skip
    assert expected <= set(services)
    consumed = set()
    for name, service in services.items():
        command = service.get("command", [])
        if "worker" in command:
            queues = command[command.index("--queues") + 1].split(",")
            assert len(queues) == 1, f"{name} should serve one queue"
            consumed.update(queues)
    assert consumed == QUEUES


def test_app_services_use_postgres_redis_and_s3():
    services = load()["services"]
    for name in ("web", "migrate", "beat", "flower", "worker-transcode"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["S3_BUCKET"] == "streamgate"
        assert env["DJANGO_SETTINGS_MODULE"] == "streamgate.settings.production"
        assert env["STREAMGATE_PUBLIC_URL"].startswith("${STREAMGATE_PUBLIC_URL:-http")
    assert "--basic-auth" in " ".join(services["flower"]["command"])


def test_no_default_secrets_and_ports_only_on_loopback():
    text = (ROOT / "compose.yaml").read_text()
    for secret in (
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "FLOWER_PASSWORD",
    ):
        assert f"${{{secret}:?" in text, f"{secret} must be required, not defaulted"
        assert f"${{{secret}:-" not in text
    for name, service in load()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_nginx_renders_the_shipped_s3_site_with_every_variable_it_uses():
    """The nginx image renders /etc/nginx/templates/NAME.template into conf.d/NAME: every file
    the site includes is mounted, and every placeholder in them has a value."""
    services = load()["services"]
    nginx = services["nginx"]
    env = nginx["environment"]
    mounted = {}
    for volume in nginx["volumes"]:
        source, target = volume.split(":")[:2]
        if target.startswith("/etc/nginx/templates/"):
            assert target.endswith(".template")
            mounted[target.removeprefix("/etc/nginx/templates/").removesuffix(".template")] = (
                ROOT / source
            )
    assert mounted["streamgate.conf"] == ROOT / "deploy/nginx/streamgate-s3.conf"
    assert env["STREAMGATE_NGINX_DIR"] == "/etc/nginx/conf.d"
    for name, source in mounted.items():
        text = source.read_text()
        assert placeholders(text) <= set(env), f"{name} uses a variable nginx's env lacks"
        for included in re.findall(r"include \$\{STREAMGATE_NGINX_DIR\}/(\S+);", text):
            assert included in mounted, f"{name} includes {included}, which is not mounted"
        # The image substitutes only the names its filter lets through.
        assert all(re.search(env["NGINX_ENVSUBST_FILTER"], used) for used in placeholders(text))


def test_nginx_is_the_only_door_to_web_and_sees_what_the_app_stores():
    services = load()["services"]
    nginx, web = services["nginx"], services["web"]
    env = nginx["environment"]
    assert "ports" not in web
    assert nginx["ports"] == ["127.0.0.1:8000:8000"]
    assert env["STREAMGATE_LISTEN"] == "8000"
    port = web["command"][web["command"].index("--port") + 1]
    assert env["STREAMGATE_UPSTREAM"] == f"web:{port}"
    assert env["STREAMGATE_S3_ENDPOINT"] == web["environment"]["S3_ENDPOINT_URL"]
    assert env["STREAMGATE_S3_BUCKET"] == web["environment"]["S3_BUCKET"]
    # /static/: the volume collectstatic fills at the app's STATIC_ROOT (/app/var/static).
    assert "static:/app/var/static" in services["collectstatic"]["volumes"]
    assert f"static:{env['STREAMGATE_STATIC_ROOT']}:ro" in nginx["volumes"]
    # The bucket lets anyone read public/ (and only that): nginx fetches without signing.
    init = " ".join(services["minio-init"]["command"])
    assert "mc anonymous set download local/streamgate/public" in init
    assert web["environment"]["TRUSTED_PROXIES"].startswith("${TRUSTED_PROXIES:-172.16.0.0/12")
