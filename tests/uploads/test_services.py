"""The upload services where timing matters: the write lease under a stalled writer."""

import time

import pytest

from apps.uploads.exceptions import OffsetMismatch, UploadBusy
from apps.uploads.lease import WriteLease
from apps.uploads.models import Upload, UploadState
from apps.uploads.services.receiving import upload_append
from tests.uploads.conftest import Tus, upload_of

pytestmark = pytest.mark.django_db


def test_a_writer_that_lost_its_lease_stops_before_writing_again(
    creator, tus_for, media_root, settings
):
    settings.TUS_LOCK_SECONDS = 0.3
    location = Tus(tus_for(creator).client).create(1000)["Location"]
    upload = upload_of(location)

    def stalling_body():
        yield b"a" * 100
        time.sleep(0.35)  # the client stalls past the lease...
        # ...and another request takes the upload over meanwhile.
        Upload.objects.filter(pk=upload.pk).update(lock_token="successor")
        yield b"b" * 100

    with pytest.raises(UploadBusy):
        upload_append(
            upload=upload, offset=0, body=stalling_body(), content_length=200, checksum=None
        )
    written = (media_root / upload.incoming_path).read_bytes()
    assert b"b" not in written  # nothing written over the successor's bytes
    stored = Upload.objects.get(pk=upload.pk)
    assert stored.offset == 0
    assert stored.lock_token == "successor"  # our release did not free someone else's lease


def test_a_slow_but_steady_writer_keeps_its_lease(creator, tus_for, media_root, settings):
    settings.TUS_LOCK_SECONDS = 0.3

    def slow_body():
        for _ in range(5):
            time.sleep(0.12)  # 0.6 s in all: twice the lease, renewed on the way
            yield b"c" * 100

    upload = upload_of(Tus(tus_for(creator).client).create(500)["Location"])
    upload = upload_append(
        upload=upload, offset=0, body=slow_body(), content_length=500, checksum=None
    )
    assert upload.offset == 500
    assert (media_root / upload.incoming_path).read_bytes() == b"c" * 500


def test_a_patch_prepared_against_a_stale_offset_never_writes(creator, tus_for, media_root):
    """Two tabs resume one upload: B read offset 0, A's PATCH then completed; B's lease
    claim must fail on the offset, not truncate A's acknowledged bytes."""
    tus = Tus(tus_for(creator).client)
    location = tus.create(10_000)["Location"]
    stale = upload_of(location)  # what tab B saw
    assert tus.patch(location, 0, b"a" * 5000).status_code == 204  # tab A
    with pytest.raises(OffsetMismatch, match="does not match the 5000 bytes"):
        WriteLease.acquire(stale, offset=0)
    assert upload_of(location).offset == 5000
    assert upload_of(location).lock_token == ""
    assert (media_root / stale.incoming_path).read_bytes() == b"a" * 5000


def test_the_lease_cannot_be_taken_on_an_upload_that_ended(creator, tus_for):
    tus = Tus(tus_for(creator).client)
    location = tus.create(100)["Location"]
    Upload.objects.filter(pk=upload_of(location).pk).update(state=UploadState.EXPIRED)
    with pytest.raises(UploadBusy):
        WriteLease.acquire(upload_of(location), offset=0)


def test_a_lease_renewal_fails_once_the_upload_ended(creator, tus_for):
    tus = Tus(tus_for(creator).client)
    upload = upload_of(tus.create(100)["Location"])
    lease = WriteLease.acquire(upload, offset=0)
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.EXPIRED)
    with pytest.raises(UploadBusy):
        lease.renew(offset=50)
    assert Upload.objects.get(pk=upload.pk).offset == 0
