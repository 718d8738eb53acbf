"""Settings come from the environment: embedded defaults with none set, services when set."""

import json
import subprocess
import sys

import pytest

from streamgate.settings.environment import storages_config
from tests.support.processes import ROOT, embedded_env

PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
from streamgate.celery import app
print(json.dumps({
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "layer_config": settings.CHANNEL_LAYERS["default"]["CONFIG"],
    "broker": app.conf.broker_url,
    "broker_transport": app.conf.broker_transport,
    "broker_connection": type(app.connection_for_write().transport).__module__,
    "health_check_interval": app.conf.broker_transport_options.get("health_check_interval"),
    "results_retry": app.conf.result_backend_always_retry,
    "results": app.conf.result_backend,
    "storage": settings.STORAGES["default"]["BACKEND"],
    "storage_options": {k: v for k, v in settings.STORAGES["default"]["OPTIONS"].items()
                        if k != "secret_key"},
    "debug": settings.DEBUG,
    "acks_late": app.conf.task_acks_late,
    "reject_on_lost": app.conf.task_reject_on_worker_lost,
    "prefetch": app.conf.worker_prefetch_multiplier,
    "serializer": app.conf.task_serializer,
    "accept": list(app.conf.accept_content),
    "visibility_timeout": app.conf.broker_transport_options.get("visibility_timeout"),
    "queues": sorted(q.name for q in app.conf.task_queues),
}))
"""


def settings_with(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_defaults_with_no_environment(tmp_path):
    found = settings_with(embedded_env(tmp_path))
    assert found["db_engine"] == "django_prometheus.db.backends.sqlite3"
    assert found["db_name"] == str(tmp_path / "db.sqlite3")
    assert found["cache"] == "django_prometheus.cache.backends.filebased.FileBasedCache"
    assert found["cache_location"] == str(tmp_path / "cache")
    assert found["layer"] == "streamgate.channel_layers.FilesystemChannelLayer"
    assert found["layer_config"] == {"root": str(tmp_path / "channels")}
    assert found["broker"] == "filesystem://"
    assert found["broker_transport"] is None
    assert found["results"] == f"file://{tmp_path / 'celery' / 'results'}"
    assert found["storage"] == "django.core.files.storage.FileSystemStorage"
    assert found["storage_options"]["location"] == str(tmp_path / "media")
    assert found["debug"] is False  # DJANGO_DEBUG=1 turns it on
    assert (tmp_path / "celery" / "messages").is_dir()


def test_services_when_the_environment_names_them(tmp_path):
    env = embedded_env(
        tmp_path,
        DATABASE_URL="postgres://root@127.0.0.1:5432/streamgate",
        REDIS_URL="redis://127.0.0.1:6379/3",
        S3_ENDPOINT_URL="http://127.0.0.1:9000",
        S3_BUCKET="media",
        S3_ACCESS_KEY="minio",
        S3_SECRET_KEY="minio-secret",
    )
    found = settings_with(env)
    assert found["db_engine"] == "django_prometheus.db.backends.postgresql"
    assert (found["db_name"], found["db_host"]) == ("streamgate", "127.0.0.1")
    assert found["cache"] == "django_prometheus.cache.backends.redis.RedisCache"
    assert found["cache_location"] == "redis://127.0.0.1:6379/3"
    assert found["layer"] == "channels_redis.core.RedisChannelLayer"
    (host,) = found["layer_config"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/3"
    assert host["max_connections"] >= 1000  # websocket bursts, past redis-py's default 100
    assert found["broker"] == "redis://127.0.0.1:6379/3"
    # kombu's Redis transport with our fix for outages (tests/transcode/test_broker_outage.py)
    assert found["broker_transport"] == "streamgate.broker:Transport"
    assert found["broker_connection"] == "streamgate.broker"
    assert found["health_check_interval"] == 10
    assert found["results_retry"] is True
    assert found["results"] == "redis://127.0.0.1:6379/3"
    assert found["visibility_timeout"] >= 24 * 3600
    assert found["storage"] == "storages.backends.s3.S3Storage"
    assert found["storage_options"]["bucket_name"] == "media"
    assert found["storage_options"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert found["storage_options"]["access_key"] == "minio"
    assert found["storage_options"]["addressing_style"] == "path"


def test_celery_policy_is_the_same_in_every_mode(tmp_path):
    for env in (
        embedded_env(tmp_path),
        embedded_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3"),
    ):
        found = settings_with(env)
        assert found["acks_late"] is True
        assert found["reject_on_lost"] is True
        assert found["prefetch"] == 1
        assert found["serializer"] == "json"
        assert found["accept"] == ["json"]
        assert found["queues"] == ["chain", "default", "transcode", "uploads", "webhooks"]


def test_secrets_can_come_from_files(tmp_path):
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text("from-a-file\n")
    env = embedded_env(tmp_path, S3_BUCKET="media", S3_ACCESS_KEY="k")
    env["S3_SECRET_KEY_FILE"] = str(secret_file)
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.STORAGES['default']['OPTIONS']['secret_key'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "from-a-file"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "Set DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "s"}, "Set STREAMGATE_PUBLIC_URL"),
    ],
    ids=["secret-key", "public-url"],
)
def test_production_refuses_to_start_without_its_settings(tmp_path, given, message):
    env = embedded_env(tmp_path, DJANGO_SETTINGS_MODULE="streamgate.settings.production", **given)
    env.pop("STREAMGATE_PUBLIC_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("endpoint", ["", "http://minio:9000"])
def test_storages_config_for_aws_and_compatible_servers(endpoint, tmp_path):
    config = storages_config(
        bucket="b",
        endpoint_url=endpoint,
        access_key="",
        secret_key="",
        region="eu-west-1",
        media_root=tmp_path,
    )
    options = config["default"]["OPTIONS"]
    assert options["bucket_name"] == "b"
    assert options["region_name"] == "eu-west-1"
    # Without keys, boto3 finds credentials itself (instance roles); none are invented.
    assert "access_key" not in options
    assert ("endpoint_url" in options) == bool(endpoint)


def test_the_deployment_checks_pass_on_production_settings(tmp_path):
    """What `make check` runs: `manage.py check --deploy`, warnings counted as failures."""
    env = embedded_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="streamgate.settings.production",
        DJANGO_SECRET_KEY="k3y-" + "x1y2z3" * 10,
        STREAMGATE_PUBLIC_URL="https://video.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
