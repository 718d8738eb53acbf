"""The S3 multipart backend against moto's S3 server over HTTP."""

import hashlib
import json
import os

import pytest

from apps.content.models import ContentStatus
from apps.uploads.models import UploadState
from apps.uploads.tasks import upload_finalize
from tests.support.media import make_padded_video
from tests.uploads.conftest import Tus, checksum, upload_of

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


@pytest.fixture
def tus(creator, tus_for, s3_storage) -> Tus:
    return tus_for(creator)


@pytest.fixture(scope="module")
def video_12mib(tmp_path_factory) -> bytes:
    path = make_padded_video(tmp_path_factory.mktemp("s3") / "big.mp4", total_bytes=12 * MIB + 123)
    return path.read_bytes()


def multipart_uploads(bucket) -> list:
    return list(bucket.multipart_uploads.all())


def keys(bucket) -> list[str]:
    return sorted(obj.key for obj in bucket.objects.all())


def test_uneven_chunks_become_5_mib_parts_and_a_tail(tus, s3_storage, video_12mib):
    """3 MiB PATCHes: parts fill across requests; the rest waits in a tail object."""
    location = tus.create(len(video_12mib))["Location"]
    chunk = 3 * MIB
    for start in range(0, 2 * chunk, chunk):  # 6 MiB so far
        assert tus.patch(location, start, video_12mib[start : start + chunk]).status_code == 204
    upload = upload_of(location)
    assert upload.backend == "s3"
    assert [part["size"] for part in upload.s3_parts] == [5 * MIB]
    assert upload.tail_size == 1 * MIB
    assert upload.offset == 6 * MIB
    assert f"incoming/{upload.id}.tail-{5 * MIB}" in keys(s3_storage)
    assert len(multipart_uploads(s3_storage)) == 1

    for start in range(2 * chunk, len(video_12mib), chunk):
        response = tus.patch(location, start, video_12mib[start : start + chunk])
        assert response.status_code == 204
    upload.refresh_from_db()
    assert upload.state == UploadState.COMPLETE
    assert [part["size"] for part in upload.s3_parts] == [5 * MIB, 5 * MIB, 2 * MIB + 123]


def test_finalize_completes_the_multipart_upload(tus, s3_storage, video_12mib):
    location = tus.upload(video_12mib, chunk=4 * MIB, filename="big.mp4")
    upload = upload_of(location)
    assert json.loads(json.dumps(str(upload.id)))
    assert upload_finalize.run(str(upload.id)) == "finalized"
    upload.refresh_from_db()
    stored = s3_storage.Object(upload.source_path).get()["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(video_12mib).hexdigest()
    assert upload.content.source_sha256 == hashlib.sha256(video_12mib).hexdigest()
    assert upload.content.status == ContentStatus.QUEUED
    assert upload.content.width == 320
    assert keys(s3_storage) == [upload.source_path]  # the tail object is gone
    assert multipart_uploads(s3_storage) == []
    # Redelivered: the multipart upload no longer exists, the object does; nothing changes.
    assert upload_finalize.run(str(upload.id)) == "finalized"


def test_a_small_file_is_a_single_short_part(tus, s3_storage):
    data = os.urandom(1000)
    upload = upload_of(tus.upload(data, chunk=300, filename="tiny.bin"))
    assert [part["size"] for part in upload.s3_parts] == [1000]
    upload_finalize.run(str(upload.id))
    upload.refresh_from_db()
    assert s3_storage.Object(upload.source_path).get()["Body"].read() == data
    assert upload.content.status == ContentStatus.FAILED  # random bytes are not a video


def test_checksum_mismatch_leaves_no_trace(tus, s3_storage):
    data = os.urandom(7 * MIB)
    location = tus.create(len(data))["Location"]
    tus.patch(location, 0, data[: 3 * MIB])
    before = upload_of(location)
    wrong = checksum("sha1", b"other")
    response = tus.patch(location, 3 * MIB, data[3 * MIB :], headers={"Upload-Checksum": wrong})
    assert response.status_code == 460
    after = upload_of(location)
    assert (after.offset, after.s3_parts, after.tail_size) == (
        before.offset,
        before.s3_parts,
        before.tail_size,
    )
    right = checksum("sha1", data[3 * MIB :])
    assert (
        tus.patch(
            location, 3 * MIB, data[3 * MIB :], headers={"Upload-Checksum": right}
        ).status_code
        == 204
    )
    upload_finalize.run(str(after.id))
    stored = s3_storage.Object(after.source_path).get()["Body"].read()
    assert stored == data


def test_terminate_aborts_the_multipart_upload(tus, s3_storage):
    data = os.urandom(6 * MIB)
    location = tus.create(len(data) * 2)["Location"]
    tus.patch(location, 0, data)
    assert len(multipart_uploads(s3_storage)) == 1
    assert tus.delete(location).status_code == 204
    assert multipart_uploads(s3_storage) == []
    assert keys(s3_storage) == []


def test_storage_down_is_503_and_resumable(tus, s3_storage, settings):
    data = os.urandom(1000)
    location = tus.create(len(data))["Location"]
    good_endpoint = settings.STORAGES["default"]["OPTIONS"]["endpoint_url"]
    settings.STORAGES["default"]["OPTIONS"]["endpoint_url"] = "http://127.0.0.1:9"
    settings.STORAGES = {**settings.STORAGES}
    response = tus.patch(location, 0, data)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert upload_of(location).offset == 0
    assert upload_of(location).lock_token == ""
    settings.STORAGES["default"]["OPTIONS"]["endpoint_url"] = good_endpoint
    settings.STORAGES = {**settings.STORAGES}
    assert tus.patch(location, 0, data).status_code == 204


def test_termination_while_s3_is_down_leaves_the_bytes_to_the_reaper(tus, s3_storage, settings):
    """S3 not answering (a connection error, not an S3 error answer) when the multipart upload
    is aborted: the DELETE still ends the upload, and the reaper deletes the bytes later."""
    from apps.uploads.finalize import uploads_reap

    location = tus.create(1000)["Location"]
    assert tus.patch(location, 0, os.urandom(500)).status_code == 204
    good_endpoint = settings.STORAGES["default"]["OPTIONS"]["endpoint_url"]
    settings.STORAGES["default"]["OPTIONS"]["endpoint_url"] = "http://127.0.0.1:9"
    settings.STORAGES = {**settings.STORAGES}
    assert tus.delete(location).status_code == 204
    assert (upload_of(location).state, upload_of(location).discarded_at) == (
        UploadState.TERMINATED,
        None,
    )
    assert len(multipart_uploads(s3_storage)) == 1  # still there
    settings.STORAGES["default"]["OPTIONS"]["endpoint_url"] = good_endpoint
    settings.STORAGES = {**settings.STORAGES}
    assert uploads_reap()["discarded"] == 1
    assert multipart_uploads(s3_storage) == []


def test_a_tail_stored_by_a_writer_that_died_before_recording_it(tus, s3_storage):
    """The writer stored a longer tail, then died before committing: the recorded length of
    the tail is read, and the upload goes on."""
    data = os.urandom(3 * MIB)
    location = tus.create(len(data))["Location"]
    tus.patch(location, 0, data[:MIB])
    upload = upload_of(location)
    s3_storage.put_object(Key=f"incoming/{upload.id}.tail-0", Body=data[: 2 * MIB])  # uncommitted
    assert tus.patch(location, MIB, data[MIB:]).status_code == 204
    upload_finalize.run(str(upload.id))
    assert s3_storage.Object(upload.source_path).get()["Body"].read() == data


def test_a_lost_tail_fails_the_upload_and_frees_its_content(
    tus, s3_storage, django_capture_on_commit_callbacks
):
    data = os.urandom(3 * MIB)
    location = tus.create(len(data))["Location"]
    tus.patch(location, 0, data[:MIB])
    upload = upload_of(location)
    s3_storage.Object(f"incoming/{upload.id}.tail-0").delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = tus.patch(location, MIB, data[MIB:])
    assert response.status_code == 410
    upload.refresh_from_db()
    assert upload.state == UploadState.FAILED
    assert upload.discarded_at is not None
    assert upload.content.status == ContentStatus.DRAFT
    assert "upload the file again" in upload.content.error
    assert multipart_uploads(s3_storage) == []
