"""The original's IPFS CID is computed in the read that hashes it at finalisation, and
registering or pinning uses the stored CID without reading the file again."""

import json

import pytest
from django.core.files.storage import default_storage

from apps.chain.models import PinStatus, RegistrationStatus
from apps.chain.services import content_id_bytes32, pin_request, registration_request
from apps.chain.tasks import chain_pin_advance, chain_registration_advance
from apps.content.cid import CHUNK_SIZE
from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.uploads.tasks import upload_finalize
from tests.chain.test_cid import reference_cid
from tests.factories import WalletFactory
from tests.support.media import make_video
from tests.support.pinning_server import PinningServer
from tests.uploads.conftest import upload_of

pytestmark = pytest.mark.django_db


def run_steps(task, row_id: int, capture) -> None:
    for _ in range(10):
        (row_id,) = json.loads(json.dumps([row_id]))
        with capture() as callbacks:
            task.run(row_id)
        if not [c for c in callbacks if getattr(c, "task", None) is task]:
            return
    raise AssertionError("still scheduling itself")


def test_finalisation_stores_the_cid_that_register_and_pin_use_without_the_file(
    creator,
    tus_for,
    media_root,
    tmp_path,
    deployed,
    tester_chain,
    settings,
    django_capture_on_commit_callbacks,
):
    data = make_video(tmp_path / "clip.mp4", seconds=4, size="640x480").read_bytes()
    assert len(data) > 2 * CHUNK_SIZE  # a DAG of several leaves, not one raw block
    upload = upload_of(tus_for(creator).upload(data, chunk=300_000, filename="clip.mp4"))
    with django_capture_on_commit_callbacks():
        assert upload_finalize.run(str(upload.id)) == "finalized"
    content = Content.objects.get(pk=upload.content_id)
    assert content.source_cid == reference_cid(media_root / content.source_path)

    # The original is gone (moved to cold storage, say): nothing reads it again.
    content_status_set(content=content, status=ContentStatus.READY)
    default_storage.delete(content.source_path)

    WalletFactory(user=content.owner)  # the registry records the creator's own wallet
    registration = registration_request(content=content, caip2=tester_chain.caip2)
    run_steps(chain_registration_advance, registration.pk, django_capture_on_commit_callbacks)
    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.CONFIRMED, registration.error
    assert registration.cid == content.source_cid
    on_chain = deployed.registry.functions.contentOf(content_id_bytes32(content.id)).call()
    assert on_chain[1] == content.source_cid

    with PinningServer() as service:
        settings.IPFS_PINNING_URL, settings.IPFS_PINNING_TOKEN = service.url, service.token
        pin = pin_request(content=content)
        run_steps(chain_pin_advance, pin.pk, django_capture_on_commit_callbacks)
    pin.refresh_from_db()
    assert pin.status == PinStatus.PINNED, pin.error
    assert pin.cid == content.source_cid
    assert service.pins[pin.request_id]["pin"]["cid"] == content.source_cid
