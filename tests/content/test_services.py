import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.content.models import ContentStatus
from apps.content.realtime import content_group
from apps.content.services import content_status_set, content_update
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db


def test_status_change_is_broadcast_after_commit(django_capture_on_commit_callbacks):
    content = ContentFactory(status=ContentStatus.PROCESSING)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(content_group(content.id), channel)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        content_status_set(content=content, status=ContentStatus.FAILED, error="Not a video file.")
    # Nothing is sent before the commit.
    (broadcast,) = callbacks
    broadcast()

    event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 5)
    assert event["type"] == "content.event"
    assert event["message"] == {
        "type": "status",
        "status": "failed",
        "error": "Not a video file.",
        "overall": 0,
        "label": "Failed",
        "retryable": False,
    }
    content.refresh_from_db()
    assert content.status == ContentStatus.FAILED
    assert content.error == "Not a video file."


def test_update_refuses_fields_that_are_not_editable():
    content = ContentFactory()
    with pytest.raises(TypeError, match="status"):
        content_update(content=content, status=ContentStatus.READY)
    content.refresh_from_db()
    assert content.status == ContentStatus.DRAFT


def test_update_can_clear_the_gate_and_leaves_other_fields():
    content = ContentFactory(
        title="Keep", gate={"allowlist": {"accounts": ["eip155:1:0x" + "11" * 20]}}
    )
    content_update(content=content, gate=None)
    content.refresh_from_db()
    assert content.gate is None
    assert content.title == "Keep"


def test_status_change_does_not_undo_a_concurrent_edit():
    content = ContentFactory(title="Old")
    stale = type(content).objects.get(pk=content.pk)
    content_update(content=content, title="New")
    content_status_set(content=stale, status=ContentStatus.QUEUED)
    content.refresh_from_db()
    assert (content.title, content.status) == ("New", ContentStatus.QUEUED)
