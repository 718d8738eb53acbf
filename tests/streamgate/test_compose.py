"""compose.yaml cannot run here (no Docker engine), so its wiring is checked as data."""

import yaml

from tests.support.processes import ROOT

QUEUES = {"uploads", "transcode", "chain", "default"}


def load() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_whole_stack():
    services = load()["services"]
    expected = {"postgres", "redis", "minio", "minio-init", "migrate", "web", "beat", "flower"}
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
