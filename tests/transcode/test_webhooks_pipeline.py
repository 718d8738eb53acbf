"""End to end: a real upload, finalised and encoded, announces upload.completed then
content.ready, delivered signed by a real worker to a real receiver."""

import pytest
from standardwebhooks import Webhook

from apps.content.models import ContentStatus
from apps.content.webhooks.services import endpoint_create
from tests.factories import CreatorFactory
from tests.support.media import make_video
from tests.support.webhook_receiver import receiver, webhook_worker
from tests.transcode.conftest import encode

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_upload_encoded_to_ready_is_announced(tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    clip = make_video(tmp_path / "tiny.mp4", seconds=2, size="320x240", rate=25)
    owner = CreatorFactory()
    with receiver() as hooks, webhook_worker(tmp_path / "worker", tmp_path / "worker.log"):
        endpoint = endpoint_create(
            owner=owner, url=hooks.url(), events=["upload.completed", "content.ready"]
        )
        content, _ = encode(clip, owner=owner, title="Tiny")
        assert content.status == ContentStatus.READY, content.error
        got = hooks.wait(2, timeout=60)
    payloads = [Webhook(endpoint.secret).verify(item.body, item.headers) for item in got]
    assert [p["type"] for p in payloads] == ["upload.completed", "content.ready"]
    upload, ready = (p["data"] for p in payloads)
    assert upload["content_id"] == ready["content_id"] == str(content.id)
    assert upload["upload"]["filename"] == "tiny.mp4"
    assert upload["upload"]["size"] == clip.stat().st_size
    assert len(upload["upload"]["sha256"]) == 64
    assert ready["status"] == "ready"
    assert ready["title"] == "Tiny"
    assert ready["duration"] == pytest.approx(2, abs=0.2)
    assert (ready["width"], ready["height"]) == (320, 240)
