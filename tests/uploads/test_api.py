"""The tus endpoints through DRF's test client, on the disk backend, with every error path."""

import asyncio
import os
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone
from rest_framework.test import APIClient

from apps.content.models import Content, ContentStatus
from apps.content.realtime import content_group
from apps.uploads.models import Upload, UploadState
from apps.uploads.tasks import upload_finalize
from tests.factories import ContentFactory, CreatorFactory
from tests.uploads.conftest import COLLECTION, Tus, checksum, metadata, upload_of

pytestmark = pytest.mark.django_db

DATA = os.urandom(300_000)


@pytest.fixture
def tus(creator, tus_for) -> Tus:
    return tus_for(creator)


def incoming_file(media_root, upload: Upload):
    return media_root / upload.incoming_path


# --- discovery and version --------------------------------------------------------------------


def test_options_describes_the_server_without_auth():
    response = Tus(APIClient()).options()
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Resumable"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert response["Tus-Checksum-Algorithm"] == "sha1,md5,sha256"
    assert int(response["Tus-Max-Size"]) == 20 * 1024**3


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_missing_or_other_tus_version_is_412(tus, version):
    headers = {"Tus-Resumable": version} if version else {}
    response = tus.create(100, headers=headers, tus=False)
    assert response.status_code == 412
    assert response["Tus-Version"] == "1.0.0"
    assert "Tus-Resumable: 1.0.0" in response.json()["detail"]
    assert Upload.objects.count() == 0


def test_version_is_checked_before_authentication():
    assert Tus(APIClient()).create(100, tus=False).status_code == 412


# --- creation ---------------------------------------------------------------------------------


def test_create(tus, creator, media_root):
    response = tus.create(len(DATA), metadata(filename="Trip to Oslo.mp4", title="Oslo"))
    assert response.status_code == 201
    assert response["Location"].startswith("http://testserver/api/v1/uploads/")
    assert response["Upload-Offset"] == "0"
    assert response["Tus-Resumable"] == "1.0.0"
    assert "GMT" in response["Upload-Expires"]
    upload = upload_of(response["Location"])
    assert (upload.owner, upload.length, upload.offset) == (creator, len(DATA), 0)
    assert upload.filename == "Trip_to_Oslo.mp4"
    assert upload.source_path == f"sources/{upload.content_id}/Trip_to_Oslo.mp4"
    assert upload.backend == "disk"
    assert incoming_file(media_root, upload).stat().st_size == 0
    content = upload.content
    assert (content.owner, content.title, content.status) == (creator, "Oslo", "uploading")


def test_title_defaults_to_the_file_name(tus):
    response = tus.create(10, metadata(filename="launch-day.mov"))
    assert upload_of(response["Location"]).content.title == "launch-day"


def test_creation_with_upload(tus, media_root):
    response = tus.create(len(DATA), metadata(filename="a.mp4"), body=DATA[:1000])
    assert response.status_code == 201
    assert response["Upload-Offset"] == "1000"
    upload = upload_of(response["Location"])
    assert upload.offset == 1000
    assert incoming_file(media_root, upload).read_bytes() == DATA[:1000]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Upload-Checksum": checksum("sha1", b"other bytes")}, DATA[:1000]),
        ({}, DATA[:1000] + b"more than Upload-Length"),
    ],
)
def test_creation_with_a_rejected_body_still_gives_a_location(tus, headers, body):
    """The upload exists: the client gets its Location and offset, and PATCHes from there."""
    response = tus.create(1000, metadata(filename="a.mp4"), body=body, headers=headers)
    assert response.status_code == 201
    assert response["Upload-Offset"] == "0"
    location = response["Location"]
    assert tus.patch(location, 0, DATA[:1000]).status_code == 204
    assert upload_of(location).state == UploadState.COMPLETE


def test_attach_to_an_existing_draft(tus, creator):
    draft = ContentFactory(owner=creator, title="Planned")
    response = tus.create(10, metadata(filename="a.mp4", content_id=str(draft.id)))
    assert response.status_code == 201
    assert upload_of(response["Location"]).content_id == draft.id
    draft.refresh_from_db()
    assert draft.status == ContentStatus.UPLOADING
    assert draft.title == "Planned"
    assert Content.objects.count() == 1


def test_cannot_attach_to_someone_elses_content(tus):
    other = ContentFactory(owner=CreatorFactory())
    response = tus.create(10, metadata(content_id=str(other.id)))
    assert response.status_code == 404
    assert response.json()["reason"] == "content"


@pytest.mark.parametrize(
    "status", [ContentStatus.QUEUED, ContentStatus.PROCESSING, ContentStatus.READY]
)
def test_cannot_attach_to_busy_or_published_content(tus, creator, status):
    content = ContentFactory(owner=creator, status=status)
    response = tus.create(10, metadata(content_id=str(content.id)))
    assert response.status_code == 409
    assert status in response.json()["detail"]
    assert Upload.objects.count() == 0


def test_a_new_upload_replaces_an_idle_one_for_the_same_draft(
    tus, creator, media_root, django_capture_on_commit_callbacks
):
    """A client that lost its Location starts over: the abandoned upload ends, bytes go."""
    draft = ContentFactory(owner=creator)
    first = upload_of(tus.create(100, metadata(content_id=str(draft.id)))["Location"])
    tus.patch(f"/api/v1/uploads/{first.id}", 0, b"x" * 40)
    with django_capture_on_commit_callbacks(execute=True):
        second = tus.create(100, metadata(content_id=str(draft.id)))
    assert second.status_code == 201
    first.refresh_from_db()
    assert first.state == UploadState.TERMINATED
    assert first.discarded_at is not None
    assert not incoming_file(media_root, first).exists()
    assert upload_of(second["Location"]).content_id == draft.id


def test_an_upload_being_written_is_not_replaced(tus, creator):
    draft = ContentFactory(owner=creator)
    first = upload_of(tus.create(100, metadata(content_id=str(draft.id)))["Location"])
    Upload.objects.filter(pk=first.pk).update(
        lock_token="writing", lock_expires_at=timezone.now() + timedelta(seconds=10)
    )
    assert tus.create(100, metadata(content_id=str(draft.id))).status_code == 409
    assert Upload.objects.get(pk=first.pk).state == UploadState.RECEIVING


@pytest.mark.parametrize(
    ("length", "meta", "reason"),
    [
        (None, None, "Upload-Length header is required"),
        ("-5", None, "non-negative integer"),
        ("abc", None, "non-negative integer"),
        ("\u00b2", None, "non-negative integer"),  # "²".isdigit(), but int() refuses it
        ("\u0663", None, "non-negative integer"),  # Arabic-Indic 3, which int() reads as 3
        ("0", None, "The file is empty"),
        ("10", "filename ***", "not base64"),
        ("10", "title " + "QUFB" * 2000, "larger than 4096 bytes"),
        ("10", metadata(content_id="not-a-uuid"), "content_id is not a valid id"),
        ("10", metadata(title="a\x00b"), "contains a NUL character"),
    ],
)
def test_create_bad_requests_are_400(tus, length, meta, reason):
    headers = {"Upload-Length": length} if length is not None else {}
    if meta is not None:
        headers["Upload-Metadata"] = meta
    response = tus.client.generic("POST", COLLECTION, headers={"Tus-Resumable": "1.0.0", **headers})
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert Upload.objects.count() == 0
    assert Content.objects.count() == 0


def test_create_needs_sign_in():
    response = Tus(APIClient()).create(10)
    assert response.status_code == 401
    assert Upload.objects.count() == 0


def test_viewers_cannot_upload(viewer, tus_for):
    response = tus_for(viewer).create(10)
    assert response.status_code == 403
    assert response.json()["reason"] == "not_a_creator"


def test_over_max_size_is_413(tus, settings):
    settings.TUS_MAX_SIZE = 1000
    response = tus.create(1001)
    assert response.status_code == 413
    assert response.json()["reason"] == "max_size"


def test_over_quota_is_413(tus, creator, settings):
    settings.TUS_USER_QUOTA = 1500
    ContentFactory(owner=creator, source_size=1000)
    assert tus.create(400).status_code == 201  # 1400 of 1500
    response = tus.create(101)
    assert response.status_code == 413
    assert response.json()["reason"] == "quota"
    assert "1501 bytes" in response.json()["detail"]


# --- HEAD ---------------------------------------------------------------------------------------


def test_head_reports_offset_length_and_metadata(tus):
    meta = metadata(filename="a.mp4")
    location = tus.create(len(DATA), meta)["Location"]
    tus.patch(location, 0, DATA[:5000])
    response = tus.head(location)
    assert response.status_code == 200
    assert response["Upload-Offset"] == "5000"
    assert response["Upload-Length"] == str(len(DATA))
    assert response["Upload-Metadata"] == meta
    assert response["Cache-Control"] == "no-store"
    assert response.content == b""


def test_other_users_upload_is_404(tus, tus_for):
    location = tus.create(len(DATA))["Location"]
    stranger = tus_for(CreatorFactory())
    assert stranger.head(location).status_code == 404
    assert stranger.patch(location, 0, DATA[:10]).status_code == 404
    assert stranger.delete(location).status_code == 404
    assert upload_of(location).offset == 0


def test_unknown_upload_is_404(tus):
    response = tus.head("/api/v1/uploads/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert "Upload-Offset" not in response


# --- PATCH --------------------------------------------------------------------------------------


def test_whole_upload_in_chunks(tus, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        location = tus.upload(DATA, chunk=70_000, filename="clip.mp4")
    upload = upload_of(location)
    assert upload.state == UploadState.COMPLETE
    assert upload.completed_at is not None
    assert incoming_file(media_root, upload).read_bytes() == DATA
    finalizations = [c for c in callbacks if getattr(c, "task", None) is upload_finalize]
    assert [c.args for c in finalizations] == [(str(upload.id),)]
    assert upload.content.progress == 100


def test_a_long_patch_commits_as_it_goes(tus, media_root, settings):
    """Offsets are committed every TUS_DISK_COMMIT_BYTES within one PATCH, and add up."""
    settings.TUS_DISK_COMMIT_BYTES = 64 * 1024
    location = tus.create(len(DATA))["Location"]
    response = tus.patch(location, 0, DATA)
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(len(DATA))
    upload = upload_of(location)
    assert (upload.offset, upload.state) == (len(DATA), UploadState.COMPLETE)
    assert incoming_file(media_root, upload).read_bytes() == DATA


def test_offset_mismatch_is_409(tus, media_root):
    location = tus.create(len(DATA))["Location"]
    tus.patch(location, 0, DATA[:100])
    response = tus.patch(location, 50, DATA[50:150])
    assert response.status_code == 409
    assert "does not match the 100 bytes" in response.json()["detail"]
    assert incoming_file(media_root, upload_of(location)).read_bytes() == DATA[:100]


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain"])
def test_wrong_content_type_is_415(tus, content_type):
    location = tus.create(len(DATA))["Location"]
    response = tus.patch(location, 0, DATA[:10], content_type=content_type)
    assert response.status_code == 415
    assert upload_of(location).offset == 0


def test_missing_offset_is_400(tus):
    location = tus.create(len(DATA))["Location"]
    response = tus.client.generic(
        "PATCH",
        location,
        DATA[:10],
        content_type="application/offset+octet-stream",
        headers={"Tus-Resumable": "1.0.0"},
    )
    assert response.status_code == 400
    assert "Upload-Offset header is required" in response.json()["detail"]


@pytest.mark.parametrize(
    "offset",
    [
        "\u00b2",  # "²".isdigit(), but int() refuses it: was a 500
        "\u0663",  # Arabic-Indic 3: int() read it as 3
    ],
)
def test_non_ascii_digits_in_the_offset_are_400(tus, offset):
    location = tus.create(len(DATA))["Location"]
    response = tus.patch(location, offset, DATA[:10])
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"Upload-Offset must be a non-negative integer, not {offset!r}.",
        "reason": "protocol",
    }
    assert upload_of(location).offset == 0


def test_body_past_upload_length_is_413(tus, media_root):
    location = tus.create(100)["Location"]
    response = tus.patch(location, 0, DATA[:101])
    assert response.status_code == 413
    assert response.json()["reason"] == "length"
    assert upload_of(location).offset == 0
    assert incoming_file(media_root, upload_of(location)).stat().st_size == 0


def test_patch_after_completion(tus, media_root):
    location = tus.upload(DATA[:1000], chunk=1000)
    again = tus.patch(location, 1000, b"")
    assert again.status_code == 204  # a retried last request is harmless
    assert again["Upload-Offset"] == "1000"
    more = tus.patch(location, 1000, b"extra bytes")
    assert more.status_code == 413
    assert upload_of(location).offset == 1000
    assert incoming_file(media_root, upload_of(location)).read_bytes() == DATA[:1000]


def whole_but_receiving(tus, data: bytes) -> str:
    """The state the soak found (tests/benchmarks/soak.py): the last PATCH committed the final
    offset, then its database connection dropped before it could mark the upload complete, so
    the upload holds every byte yet still receives. Made here by uploading, then putting the
    row back as that PATCH left it."""
    location = tus.upload(data, chunk=len(data))
    Upload.objects.filter(pk=upload_of(location).pk).update(
        state=UploadState.RECEIVING, completed_at=None
    )
    return location


def test_a_retried_last_patch_completes_an_upload_its_first_try_left_receiving(
    tus, media_root, django_capture_on_commit_callbacks
):
    location = whole_but_receiving(tus, DATA[:1000])
    with django_capture_on_commit_callbacks() as callbacks:
        again = tus.patch(location, 1000, b"")
    assert again.status_code == 204
    upload = upload_of(location)
    assert upload.state == UploadState.COMPLETE
    finalizations = [c for c in callbacks if getattr(c, "task", None) is upload_finalize]
    assert [c.args for c in finalizations] == [(str(upload.id),)]


def test_the_reaper_completes_an_upload_whose_last_patch_died_before_completing(
    tus, media_root, django_capture_on_commit_callbacks
):
    from apps.uploads.finalize import uploads_reap

    location = whole_but_receiving(tus, DATA[:1000])
    with django_capture_on_commit_callbacks() as callbacks:
        counts = uploads_reap()
    assert counts["completed"] == 1
    upload = upload_of(location)
    assert upload.state == UploadState.COMPLETE
    finalizations = [c for c in callbacks if getattr(c, "task", None) is upload_finalize]
    assert [c.args for c in finalizations] == [(str(upload.id),)]
    assert uploads_reap()["completed"] == 0  # once


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256"])
def test_checksum_match(tus, media_root, algorithm):
    location = tus.create(len(DATA))["Location"]
    chunk = DATA[:4096]
    response = tus.patch(
        location, 0, chunk, headers={"Upload-Checksum": checksum(algorithm, chunk)}
    )
    assert response.status_code == 204
    assert upload_of(location).offset == 4096


def test_checksum_mismatch_is_460_and_the_chunk_is_discarded(tus, media_root):
    location = tus.create(len(DATA))["Location"]
    tus.patch(location, 0, DATA[:1000])
    wrong = checksum("sha256", b"something else")
    response = tus.patch(location, 1000, DATA[1000:2000], headers={"Upload-Checksum": wrong})
    assert response.status_code == 460
    assert response.json()["reason"] == "checksum"
    upload = upload_of(location)
    assert upload.offset == 1000
    assert incoming_file(media_root, upload).read_bytes() == DATA[:1000]
    # The client resends the chunk and goes on.
    right = checksum("sha256", DATA[1000:2000])
    assert (
        tus.patch(location, 1000, DATA[1000:2000], headers={"Upload-Checksum": right}).status_code
        == 204
    )


def test_unsupported_checksum_algorithm_is_400(tus):
    location = tus.create(len(DATA))["Location"]
    response = tus.patch(location, 0, DATA[:10], headers={"Upload-Checksum": "crc32 AAAAAA=="})
    assert response.status_code == 400
    assert upload_of(location).offset == 0


def test_a_write_in_progress_makes_a_second_patch_409(tus, settings):
    """The write lease: held (as a streaming PATCH holds it) for longer than a request waits
    for it, a concurrent PATCH is refused, and told when the lease would run out."""
    settings.TUS_LOCK_WAIT_SECONDS = 0.2
    location = tus.create(len(DATA))["Location"]
    upload = upload_of(location)
    Upload.objects.filter(pk=upload.pk).update(
        lock_token="held-by-another-request", lock_expires_at=timezone.now() + timedelta(seconds=10)
    )
    started = time.monotonic()
    response = tus.patch(location, 0, DATA[:100])
    assert time.monotonic() - started >= 0.2  # it waited for the holder first
    assert response.status_code == 409
    assert response.json()["reason"] == "locked"
    assert 9 <= int(response["Retry-After"]) <= 10
    assert upload_of(location).offset == 0


def test_head_during_a_write_answers_the_committed_offset_after_waiting(tus, settings):
    settings.TUS_LOCK_WAIT_SECONDS = 0.2
    location = tus.create(len(DATA))["Location"]
    assert tus.patch(location, 0, DATA[:100]).status_code == 204
    Upload.objects.filter(pk=upload_of(location).pk).update(
        lock_token="a-live-writer", lock_expires_at=timezone.now() + timedelta(seconds=10)
    )
    started = time.monotonic()
    response = tus.head(location)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200
    assert response["Upload-Offset"] == "100"


def test_a_dead_writers_lease_runs_out(tus):
    location = tus.create(len(DATA))["Location"]
    Upload.objects.filter(pk=upload_of(location).pk).update(
        lock_token="crashed-writer", lock_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tus.patch(location, 0, DATA[:100]).status_code == 204
    assert Upload.objects.get(pk=upload_of(location).pk).lock_token == ""


def test_bytes_past_the_offset_from_a_crashed_writer_are_dropped(tus, media_root):
    location = tus.create(len(DATA))["Location"]
    tus.patch(location, 0, DATA[:100])
    with incoming_file(media_root, upload_of(location)).open("ab") as partial:
        partial.write(b"garbage that was never acknowledged")
    assert tus.patch(location, 100, DATA[100:200]).status_code == 204
    assert incoming_file(media_root, upload_of(location)).read_bytes() == DATA[:200]


def test_bytes_lost_in_a_machine_crash_are_asked_for_again(tus, media_root):
    """The file ends before the recorded offset (a power loss ate the page cache): HEAD
    reports what is really stored, and the client's resend from there completes the file."""
    location = tus.create(len(DATA))["Location"]
    tus.patch(location, 0, DATA[:2000])
    with incoming_file(media_root, upload_of(location)).open("r+b") as damaged:
        damaged.truncate(1500)
    assert tus.patch(location, 2000, DATA[2000:3000]).status_code == 409
    head = tus.head(location)
    assert head["Upload-Offset"] == "1500"
    assert tus.patch(location, 1500, DATA[1500:3000]).status_code == 204
    assert incoming_file(media_root, upload_of(location)).read_bytes() == DATA[:3000]


def test_progress_is_broadcast_to_the_content_group(tus, django_capture_on_commit_callbacks):
    location = tus.create(len(DATA))["Location"]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(content_group(upload_of(location).content_id), channel)
    with django_capture_on_commit_callbacks(execute=True):
        tus.patch(location, 0, DATA[:1000])
    event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 5)
    assert event["message"] == {
        "type": "upload",
        "received": 1000,
        "total": len(DATA),
        "overall": int(30 * 1000 / len(DATA)),  # uploading is the first 30 of 100
        "label": "Uploading",
    }


def test_progress_messages_are_throttled(tus, settings, django_capture_on_commit_callbacks):
    settings.UPLOAD_PROGRESS_INTERVAL = 3600
    location = tus.create(len(DATA))["Location"]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(content_group(upload_of(location).content_id), channel)
    for start in range(0, len(DATA), 100_000):
        with django_capture_on_commit_callbacks(execute=True):
            tus.patch(location, start, DATA[start : start + 100_000])
    received = []
    while not received or received[-1] != len(DATA):
        event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 5)
        received.append(event["message"]["received"])
    # The first message, then nothing within the interval except the final one.
    assert received == [100_000, len(DATA)]


# --- expiry and termination ------------------------------------------------------------------


def test_expired_upload_is_410(tus):
    location = tus.create(len(DATA))["Location"]
    Upload.objects.filter(pk=upload_of(location).pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tus.head(location).status_code == 410
    assert tus.patch(location, 0, DATA[:10]).status_code == 410


def test_patch_moves_the_expiry_forward(tus):
    location = tus.create(len(DATA))["Location"]
    soon = timezone.now() + timedelta(minutes=1)
    Upload.objects.filter(pk=upload_of(location).pk).update(expires_at=soon)
    tus.patch(location, 0, DATA[:10])
    assert upload_of(location).expires_at > soon + timedelta(hours=1)


def test_terminate(tus, media_root):
    location = tus.create(len(DATA))["Location"]
    tus.patch(location, 0, DATA[:100])
    upload = upload_of(location)
    response = tus.delete(location)
    assert response.status_code == 204
    assert not incoming_file(media_root, upload).exists()
    upload.refresh_from_db()
    assert upload.state == UploadState.TERMINATED
    assert upload.content.status == ContentStatus.DRAFT
    assert tus.head(location).status_code == 410
    assert tus.patch(location, 100, DATA[100:200]).status_code == 410
    assert tus.delete(location).status_code == 410


def test_terminate_while_writing_is_409(tus, settings):
    settings.TUS_LOCK_WAIT_SECONDS = 0.1
    location = tus.create(len(DATA))["Location"]
    Upload.objects.filter(pk=upload_of(location).pk).update(
        lock_token="writer", lock_expires_at=timezone.now() + timedelta(seconds=10)
    )
    response = tus.delete(location)
    assert response.status_code == 409
    assert response.json()["reason"] == "locked"
    assert 9 <= int(response["Retry-After"]) <= 10
    assert upload_of(location).state == UploadState.RECEIVING


# --- method override and CORS -------------------------------------------------------------------


def test_method_override(tus, media_root):
    location = tus.create(len(DATA))["Location"]
    response = tus.client.generic(
        "POST",
        location,
        DATA[:64],
        content_type="application/offset+octet-stream",
        headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204
    assert response["Upload-Offset"] == "64"
    deleted = tus.client.generic(
        "POST", location, headers={"Tus-Resumable": "1.0.0", "X-HTTP-Method-Override": "DELETE"}
    )
    assert deleted.status_code == 204
    assert upload_of(location).state == UploadState.TERMINATED


def test_cors_preflight_and_exposed_headers(tus, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://studio.example"]
    preflight = APIClient().generic(
        "OPTIONS",
        COLLECTION,
        headers={
            "Origin": "https://studio.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,upload-checksum",
        },
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://studio.example"
    allowed = preflight["Access-Control-Allow-Headers"]
    assert {"tus-resumable", "upload-offset", "upload-checksum", "upload-metadata"} <= set(
        allowed.split(", ")
    )
    assert "PATCH" in preflight["Access-Control-Allow-Methods"]
    created = tus.create(10, headers={"Origin": "https://studio.example"})
    exposed = created["Access-Control-Expose-Headers"]
    assert {"location", "upload-offset", "tus-resumable", "upload-expires"} <= set(
        exposed.split(", ")
    )
    foreign = tus.create(10, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign


def test_session_uploads_need_the_csrf_token(creator, media_root):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(creator)
    tus = Tus(client)
    assert tus.create(10).status_code == 403
    client.get("/admin/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = tus.create(10, body=b"0123456789", headers={"X-CSRFToken": token})
    assert response.status_code == 201
    assert response["Upload-Offset"] == "10"
    assert incoming_file(media_root, upload_of(response["Location"])).read_bytes() == b"0123456789"
