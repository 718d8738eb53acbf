import json
import time

import pytest
from django.conf import settings as django_settings

from tests.support.processes import embedded_env, free_port, http_get, redis_server, web_server

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_all_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "cache", "broker", "storage"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "no-cache" in response.headers["Cache-Control"]


def test_readyz_names_unreachable_storage(client, settings, caplog):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "media",
                "endpoint_url": f"http://127.0.0.1:{free_port()}",
                "access_key": "k",
                "secret_key": "s",
                "region_name": "us-east-1",
            },
        },
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["storage"]
    assert body["checks"]["storage"]["ok"] is False
    # The reason is logged, never shown to anonymous callers (DEBUG is off in tests).
    assert "error" not in body["checks"]["storage"]
    assert "Could not connect" in caplog.text


def test_readyz_names_a_missing_bucket(client, settings, s3_storage, caplog):
    settings.STORAGES["default"]["OPTIONS"]["bucket_name"] = "no-such-bucket"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]
    assert "no-such-bucket" in caplog.text


def test_readyz_shows_reasons_in_debug(client, settings):
    settings.DEBUG = True
    settings.STORAGES["default"]["OPTIONS"]["location"] = "/proc/streamgate-cannot-write-here"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]
    assert "streamgate-cannot-write-here" in response.json()["checks"]["storage"]["error"]


def test_readyz_names_unreachable_cache(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]


@pytest.mark.django_db(transaction=True)
def test_readyz_follows_redis_going_down_and_coming_back(tmp_path, logs_dir):
    """A real web server process: Redis (cache + broker) stops, readyz says so, then recovers."""
    db = django_settings.DATABASES["default"]
    redis_port = free_port()
    env = embedded_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
    )
    with web_server(env, logs_dir / "web.log") as base_url:
        with redis_server(logs_dir / "redis.log", port=redis_port):
            status, body = http_get(f"{base_url}/readyz")
            assert status == 200, body

        status, body = http_get(f"{base_url}/readyz", timeout=30)
        assert status == 503
        report = json.loads(body)
        assert report["failing"] == ["cache", "broker"]
        assert report["checks"]["database"]["ok"] is True
        assert report["checks"]["storage"]["ok"] is True

        with redis_server(logs_dir / "redis-again.log", port=redis_port):
            deadline = time.monotonic() + 20
            while True:
                status, body = http_get(f"{base_url}/readyz", timeout=30)
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert status == 200, body


def test_metrics_exposes_django_and_process_metrics(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_view_transport_method_total" in text
    assert 'view="healthz"' in text
    assert "process_resident_memory_bytes" in text


def test_schema_is_valid_openapi_3(client):
    from openapi_spec_validator import validate

    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/contents/" in schema["paths"]
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_docs_page_uses_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
