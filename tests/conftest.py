import uuid
from pathlib import Path

import boto3
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient

from apps.access.services import api_token_create
from streamgate.version_triggers import PUSH_TRIGGER
from tests.factories import CreatorFactory, StaffFactory, UserFactory
from tests.support import ast_lock

pytest_plugins = ["tests.support.evm"]

ast_lock.install()  # before any test starts a thread


# Run in two pytest-xdist workers (README, The two commands), these modules go last and alone:
# they hold real processes to time budgets (an outage answered within seconds, a task's time
# limit, a log line within its wait, the edge's database check within its timeout), which the
# other worker's CPU would eat on a two-core machine.
SERIAL_MODULES = {
    "tests/chain/test_steps_worker.py",
    "tests/streamgate/test_cache_freshness.py",
    "tests/streamgate/test_logging.py",
    "tests/streamgate/test_outage_boundary.py",
    "tests/streamgate/test_outages.py",
    "tests/transcode/test_database_outage.py",
}


def pytest_collection_modifyitems(items):
    root = Path(__file__).resolve().parent.parent
    for item in items:
        if str(item.path.relative_to(root)) in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    """Start from an empty test Redis database: no queued tasks or cache entries of earlier runs."""
    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _cache_versions_move_at_each_statement(request):
    """A test on pytest-django's ``db`` runs in one transaction that never commits, so the
    commit-time bump of cache versions (streamgate/versions.py) would never come: in such a
    test they move at the end of each statement instead, as each commit moves them for real."""
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in request.fixturenames or (marker and marker.kwargs.get("transaction")):
        return
    if "db" not in request.fixturenames and marker is None:
        return
    request.getfixturevalue("db")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET CONSTRAINTS {PUSH_TRIGGER} IMMEDIATE")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Each test writes media to its own folder."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def creator(db):
    return CreatorFactory()


@pytest.fixture
def viewer(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def client_for():
    """An API client authenticated with a real bearer token of ``user``."""

    def make(user) -> APIClient:
        _, clear = api_token_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
        return client

    return make


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 API served over HTTP on a loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(settings, moto_server):
    """Media storage switched to a fresh bucket on the moto server; yields the boto3 bucket."""
    bucket_name = f"test-{uuid.uuid4().hex[:12]}"
    s3 = boto3.resource(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    bucket = s3.create_bucket(Bucket=bucket_name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket_name,
                "endpoint_url": moto_server,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
                "addressing_style": "path",
                "file_overwrite": True,
            },
        },
    }
    return bucket


@pytest.fixture
def logs_dir(tmp_path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder
