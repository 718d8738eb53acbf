"""Finalisation probes an upload without opening anything the upload names: a playlist, manifest
or list pointing at our network or at another content's source ends failed, with the one neutral
message, and nothing it names was connected to or opened."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.content.models import ContentStatus
from apps.uploads.models import Upload, UploadState
from apps.uploads.tasks import upload_finalize
from tests.factories import ContentFactory
from tests.support.hostile_media import HOSTILE_CASES, NEUTRAL_ERROR, hostile_upload
from tests.support.media import make_video
from tests.support.tripwires import OpenWatch, TcpListener
from tests.uploads.conftest import Tus, upload_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def tus(creator, tus_for) -> Tus:
    return tus_for(creator)


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("sources") / "clip.mp4", seconds=1).read_bytes()


@pytest.fixture
def listener():
    listening = TcpListener()
    yield listening
    listening.close()


def finalize_upload(tus: Tus, name: str, data: bytes) -> Upload:
    upload = upload_of(tus.upload(data, chunk=len(data), filename=name))
    assert upload_finalize.run(str(upload.id)) == "finalized"
    upload.refresh_from_db()
    return upload


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_hostile_upload_opens_nothing_and_gets_the_neutral_message(
    case, tus, media_root, tmp_path, listener, clip_bytes
):
    other = ContentFactory()
    victim = media_root / default_storage.save(
        f"sources/{other.id}/clip.mp4", ContentFile(clip_bytes)
    )
    name, data = hostile_upload(case, port=listener.port, victim=victim, workdir=tmp_path)
    watch = OpenWatch(victim.parent)
    try:
        upload = finalize_upload(tus, name, data)
        opened = watch.opened()
    finally:
        watch.close()
    assert listener.connections == 0, listener.requests
    assert opened == []
    assert (upload.state, upload.error) == (UploadState.FINALIZED, NEUTRAL_ERROR)
    content = upload.content
    assert (content.status, content.error) == (ContentStatus.FAILED, NEUTRAL_ERROR)
    assert (media_root / content.source_path).read_bytes() == data  # kept, as for any refusal


def test_on_s3_a_hostile_upload_opens_nothing(tus, tmp_path, listener, s3_storage):
    """On S3 finalisation probes through a ranged-GET file object: nested opens get no
    protocol at all."""
    name, data = hostile_upload(
        "hls-open-port", port=listener.port, victim=tmp_path / "none.mp4", workdir=tmp_path
    )
    upload = finalize_upload(tus, name, data)
    assert listener.connections == 0, listener.requests
    assert (upload.content.status, upload.content.error) == (ContentStatus.FAILED, NEUTRAL_ERROR)


def test_an_ordinary_video_is_still_accepted(tus, clip_bytes):
    upload = finalize_upload(tus, "clip.mp4", clip_bytes)
    assert (upload.error, upload.content.status) == ("", ContentStatus.QUEUED)
    assert (upload.content.width, upload.content.height) == (320, 240)
