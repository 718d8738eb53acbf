"""A disk that fills up or turns read-only under a real uvicorn: uploads answer 503 with
Retry-After (never 500), the offset they record is exactly the bytes stored, and the client
resumes from HEAD's offset once there is room again, ending with the same sha256.

The faults are real: a small tmpfs as the media root (or as TUS_BUFFER_DIR, where the S3
backend spools its parts), and a bind mount remounted read-only."""

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.access.services import api_token_create
from apps.uploads.models import Upload, UploadState
from tests.factories import CreatorFactory
from tests.support.processes import web_server
from tests.uploads.test_live import server_env
from tests.uploads.test_resume_after_drop import Client

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs or a bind mount needs root"),
]

MIB = 1024 * 1024


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def mounted(path: Path, *args: str):
    path.mkdir(parents=True, exist_ok=True)
    mount(*args, str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def tmpfs(path: Path, size: str):
    return mounted(path, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs")


def bound(path: Path):
    """``path`` bound onto itself, so that it can be remounted read-only and back."""
    path.mkdir(parents=True, exist_ok=True)
    return mounted(path, "--bind", str(path))


@pytest.fixture
def creator_token():
    _, token = api_token_create(user=CreatorFactory())
    return token


@pytest.fixture
def media(tmp_path) -> Path:
    return tmp_path / "var" / "media"


def client_of(base: str, token: str) -> Client:
    return Client(int(base.rsplit(":", 1)[-1]), token)


def create(client: Client, length: int, body: bytes = b"", **headers: str):
    if body:
        headers["Content-Type"] = "application/offset+octet-stream"
    status, answer, _ = client.request(
        "POST", "/api/v1/uploads/", body, **{"Upload-Length": str(length), **headers}
    )
    assert status == 201, status
    return "/api/v1/uploads/" + answer["Location"].rsplit("/", 1)[-1], answer


def head_offset(client: Client, path: str) -> int:
    status, headers, _ = client.request("HEAD", path)
    assert status == 200
    return int(headers["Upload-Offset"])


def assert_storage_unavailable(status: int, headers, body: bytes) -> None:
    assert status == 503, (status, body[:300])
    assert headers["Retry-After"] == "30"
    found = json.loads(body)
    assert found["reason"] == "unavailable"
    assert found["dependency"] == "storage"
    assert "full or read-only" in found["detail"]


def incoming(media: Path, path: str) -> Path:
    return media / Upload.objects.get(pk=path.rsplit("/", 1)[-1]).incoming_path


def test_a_full_disk_is_a_503_and_the_upload_resumes_once_there_is_room(
    tmp_path, media, logs_dir, creator_token
):
    data = os.urandom(3 * MIB)
    with tmpfs(media, "2m"), web_server(server_env(tmp_path), logs_dir / "web.log") as base:
        client = client_of(base, creator_token)
        path, _ = create(client, len(data))
        assert_storage_unavailable(*client.patch(path, 0, data))
        # What the disk took is kept and recorded: no more, no less.
        offset = head_offset(client, path)
        stored = incoming(media, path).read_bytes()
        assert 0 < offset == len(stored) < len(data)
        assert stored == data[:offset]

        # Creation-with-upload on the full disk: the upload exists, with the bytes that fit.
        other, headers = create(client, MIB, body=os.urandom(MIB))
        assert int(headers["Upload-Offset"]) == incoming(media, other).stat().st_size
        assert head_offset(client, other) == int(headers["Upload-Offset"])

        mount("-o", "remount,size=16m", str(media))  # room again
        status, headers, body = client.patch(path, offset, data[offset:])
        assert status == 204, body
        assert int(headers["Upload-Offset"]) == len(data)
        stored = incoming(media, path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    upload = Upload.objects.get(pk=path.rsplit("/", 1)[-1])
    assert upload.offset == len(data)
    assert upload.state != UploadState.RECEIVING
    assert " 500" not in (logs_dir / "web.log").read_text()


def test_read_only_storage_is_a_503_and_the_upload_resumes_once_writable(
    tmp_path, media, logs_dir, creator_token
):
    data = os.urandom(2 * MIB)
    with bound(media), web_server(server_env(tmp_path), logs_dir / "web.log") as base:
        client = client_of(base, creator_token)
        path, _ = create(client, len(data))
        status, _, body = client.patch(path, 0, data[:MIB])
        assert status == 204, body

        mount("-o", "remount,ro,bind", str(media))
        assert_storage_unavailable(*client.patch(path, MIB, data[MIB:]))
        assert head_offset(client, path) == MIB
        # A new upload cannot even create its file.
        status, headers, body = client.request(
            "POST", "/api/v1/uploads/", **{"Upload-Length": "10"}
        )
        assert_storage_unavailable(status, headers, body)

        mount("-o", "remount,rw,bind", str(media))
        offset = head_offset(client, path)
        assert offset == MIB
        status, headers, body = client.patch(path, offset, data[offset:])
        assert status == 204, body
        stored = incoming(media, path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert " 500" not in (logs_dir / "web.log").read_text()


def test_a_full_s3_spool_is_a_503_and_the_upload_resumes(
    tmp_path, logs_dir, creator_token, s3_storage
):
    """The S3 backend gathers each part in TUS_BUFFER_DIR before sending it."""
    data = os.urandom(6 * MIB)
    spool = tmp_path / "var" / "tmp" / "uploads"
    env = server_env(tmp_path, django_settings.STORAGES["default"]["OPTIONS"])
    with tmpfs(spool, "1m"), web_server(env, logs_dir / "web.log") as base:
        client = client_of(base, creator_token)
        path, _ = create(client, len(data))
        assert_storage_unavailable(*client.patch(path, 0, data))
        assert head_offset(client, path) == 0  # nothing reached S3, nothing is claimed

        mount("-o", "remount,size=16m", str(spool))
        status, headers, body = client.patch(path, 0, data)
        assert status == 204, body
        assert int(headers["Upload-Offset"]) == len(data)
    upload = Upload.objects.get(pk=path.rsplit("/", 1)[-1])
    assert sum(part["size"] for part in upload.s3_parts) == len(data)
    assert " 500" not in (logs_dir / "web.log").read_text()
