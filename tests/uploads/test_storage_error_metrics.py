"""streamgate_upload_storage_errors_total (the UploadStorageErrors alert's series): storage that
fails under a tus request (stage receive) or under the finalisation (stage finalize) is counted,
against moto's S3 server made unreachable."""

import os
import re

import pytest

from apps.content.storage import StorageUnavailable
from apps.uploads.finalize import upload_finalize
from apps.uploads.models import UploadState
from tests.uploads.conftest import Tus, upload_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def tus(creator, tus_for, s3_storage) -> Tus:
    return tus_for(creator)


@pytest.fixture
def s3_down(settings):
    """Point the storage at a port nobody listens on; call it again to bring S3 back."""
    options = settings.STORAGES["default"]["OPTIONS"]
    good = options["endpoint_url"]

    def switch(down: bool = True) -> None:
        options["endpoint_url"] = "http://127.0.0.1:9" if down else good
        settings.STORAGES = {**settings.STORAGES}

    return switch


def storage_errors(client) -> dict[str, float]:
    page = client.get("/metrics").content.decode()
    found = re.findall(
        r'^streamgate_upload_storage_errors_total\{stage="(\w+)"\} (\S+)$', page, re.M
    )
    return {stage: float(value) for stage, value in found}


def test_a_patch_that_storage_refuses_is_counted_as_receive(client, tus, s3_down):
    data = os.urandom(1000)
    location = tus.create(len(data))["Location"]
    before = storage_errors(client)
    assert set(before) == {"receive", "finalize"}  # there before the first error
    s3_down()
    assert tus.patch(location, 0, data).status_code == 503
    assert storage_errors(client) == {**before, "receive": before["receive"] + 1}
    s3_down(False)
    assert tus.patch(location, 0, data).status_code == 204
    assert storage_errors(client) == {**before, "receive": before["receive"] + 1}


def test_a_finalisation_that_storage_refuses_is_counted_as_finalize(
    client, tus, s3_down, django_capture_on_commit_callbacks
):
    data = os.urandom(1000)
    with django_capture_on_commit_callbacks():  # the finalize task is run here, not sent
        location = tus.create(len(data))["Location"]
        assert tus.patch(location, 0, data).status_code == 204
    upload = upload_of(location)
    before = storage_errors(client)
    s3_down()
    with pytest.raises(StorageUnavailable):  # the task retries it (autoretry_for)
        upload_finalize(upload_id=str(upload.id), token="task-1")
    assert storage_errors(client) == {**before, "finalize": before["finalize"] + 1}
    s3_down(False)
    # The retry (same task id) takes its claim back and finishes.
    assert upload_finalize(upload_id=str(upload.id), token="task-1").state == UploadState.FINALIZED
    assert storage_errors(client) == {**before, "finalize": before["finalize"] + 1}
