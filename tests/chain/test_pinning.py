"""Pinning a content's source through the Pinning Service API, against a local server."""

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.chain.models import Pin, PinStatus
from apps.chain.tasks import chain_pin_advance
from apps.content.cid import cid_of_bytes
from apps.content.models import ContentStatus
from tests.factories import ContentFactory
from tests.support.pinning_server import PinningServer

pytestmark = pytest.mark.django_db

DATA = b"a video, as far as pinning is concerned\n" * 1000


@pytest.fixture
def service(settings):
    with PinningServer() as server:
        settings.IPFS_PINNING_URL = server.url
        settings.IPFS_PINNING_TOKEN = server.token
        yield server


@pytest.fixture
def content(media_root):
    content = ContentFactory(status=ContentStatus.READY)
    content.source_path = default_storage.save(f"sources/{content.id}/v.mp4", ContentFile(DATA))
    content.save()
    return content


def run_until_settled(pin_id, capture) -> Pin:
    for _ in range(10):
        (pin_id,) = json.loads(json.dumps([pin_id]))
        with capture() as callbacks:
            chain_pin_advance.run(pin_id)
        again = [c for c in callbacks if getattr(c, "task", None) is chain_pin_advance]
        if not again:
            return Pin.objects.get(pk=pin_id)
        assert again[0].options["countdown"] > 0  # polls are spaced out
    raise AssertionError("pin never settled")


def test_pin_goes_queued_pinning_pinned(
    content, service, client_for, django_capture_on_commit_callbacks
):
    api = client_for(content.owner)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/contents/{content.id}/pin/")
    assert response.status_code == 202
    assert response.json()["ipfs"]["status"] == "queued"
    (first,) = [c for c in callbacks if getattr(c, "task", None) is chain_pin_advance]
    pin = run_until_settled(first.args[0], django_capture_on_commit_callbacks)
    assert pin.status == PinStatus.PINNED
    assert pin.cid == cid_of_bytes(DATA)
    assert service.pins[pin.request_id]["pin"]["cid"] == pin.cid
    assert service.pins[pin.request_id]["pin"]["meta"] == {"content": str(content.id)}
    assert api.get(f"/api/v1/contents/{content.id}/").json()["ipfs"] == {
        "cid": pin.cid,
        "status": "pinned",
        "error": None,
    }


def test_a_failed_pin_says_why(content, service, django_capture_on_commit_callbacks):
    from apps.chain.services import pin_request

    service.fail_cids.add(cid_of_bytes(DATA))
    pin = run_until_settled(pin_request(content=content).pk, django_capture_on_commit_callbacks)
    assert pin.status == PinStatus.FAILED
    assert pin.error == "content not found on the network"


def test_a_wrong_token_fails_permanently(
    content, service, settings, django_capture_on_commit_callbacks
):
    from apps.chain.services import pin_request

    settings.IPFS_PINNING_TOKEN = "wrong"
    pin = run_until_settled(pin_request(content=content).pk, django_capture_on_commit_callbacks)
    assert pin.status == PinStatus.FAILED
    assert "Invalid access token" in pin.error


def test_an_unreachable_service_is_retried(content, settings):
    from apps.chain.pinning import PinningError
    from apps.chain.services import pin_advance, pin_request
    from tests.support.processes import free_port

    settings.IPFS_PINNING_URL = f"http://127.0.0.1:{free_port()}"
    pin = pin_request(content=content)
    with pytest.raises(PinningError) as raised:
        pin_advance(pin_id=pin.pk)
    assert raised.value.permanent is False
    assert Pin.objects.get(pk=pin.pk).status == PinStatus.QUEUED


def test_pinning_needs_a_configured_service(content, client_for, settings):
    settings.IPFS_PINNING_URL = ""
    response = client_for(content.owner).post(f"/api/v1/contents/{content.id}/pin/")
    assert response.status_code == 409
    assert response.json()["reason"] == "no_pinning_service"


def test_a_pin_of_other_bytes_fails(content, service, django_capture_on_commit_callbacks):
    """The service says it pinned a different CID than ours: that is not our file."""
    from apps.chain.services import pin_request

    original = service.httpd.RequestHandlerClass.do_GET

    def lying_get(handler):
        for pin in service.pins.values():
            pin["pin"]["cid"] = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        original(handler)

    service.httpd.RequestHandlerClass.do_GET = lying_get
    pin = run_until_settled(pin_request(content=content).pk, django_capture_on_commit_callbacks)
    assert pin.status == PinStatus.FAILED
    assert "not " + cid_of_bytes(DATA) in pin.error


def test_the_same_content_under_another_cid_encoding_is_the_same_pin():
    import multibase

    from apps.content.cid import same_content

    ours = cid_of_bytes(DATA)
    base36 = multibase.encode("base36", multibase.decode(ours)).decode()
    assert base36.startswith("k")
    assert same_content(ours, base36)
    assert not same_content(ours, cid_of_bytes(b"other"))


def test_a_pin_request_whose_answer_was_lost_is_found_not_repeated(
    content, service, django_capture_on_commit_callbacks
):
    from apps.chain.services import pin_request

    first = run_until_settled(pin_request(content=content).pk, django_capture_on_commit_callbacks)
    posts = [r for r in service.requests if r[0] == "POST"]
    # A second pin of the same file under the same name: the service already has it.
    second = run_until_settled(pin_request(content=content).pk, django_capture_on_commit_callbacks)
    assert second.request_id == first.request_id
    assert [r for r in service.requests if r[0] == "POST"] == posts


@pytest.mark.parametrize("status", [429, 503])
def test_busy_or_broken_services_are_retried(content, service, status):
    from apps.chain.pinning import PinningError
    from apps.chain.services import pin_advance, pin_request

    service.force_status = status
    pin = pin_request(content=content)
    with pytest.raises(PinningError) as raised:
        pin_advance(pin_id=pin.pk)
    assert raised.value.permanent is False
    assert Pin.objects.get(pk=pin.pk).status == PinStatus.QUEUED


def test_a_pin_that_never_gets_through_fails_with_the_reason(content, settings):
    from apps.chain.services import pin_request
    from tests.support.processes import free_port

    settings.IPFS_PINNING_URL = f"http://127.0.0.1:{free_port()}"
    pin = pin_request(content=content)
    result = chain_pin_advance.apply(args=(pin.pk,), retries=chain_pin_advance.max_retries)
    assert result.get() == "failed"
    pin.refresh_from_db()
    assert pin.status == PinStatus.FAILED
    assert "unreachable" in pin.error
