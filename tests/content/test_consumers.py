"""The websocket consumer, through the whole ASGI application and the Redis channel layer."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.access.services import api_token_create
from apps.content.models import ContentStatus
from apps.content.services import content_status_set
from streamgate.asgi import application
from tests.factories import ContentFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(content_id, user=None, token=None, origin="site"):
    headers = [(b"host", b"127.0.0.1")]
    if origin == "site":  # a page of this site (the origin check needs the exact origin)
        origin = settings.STREAMGATE_PUBLIC_URL.encode()
    if origin:
        headers.append((b"origin", origin))
    if user is not None:
        _, token = await database_sync_to_async(api_token_create)(user=user)
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/contents/{content_id}/", headers=headers
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


@pytest.fixture(params=["redis", "filesystem"])
def channel_layer_kind(request, settings, tmp_path):
    """Both layers StreamGate ships: channels-redis and the embedded filesystem layer."""
    if request.param == "filesystem":
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "streamgate.channel_layers.FilesystemChannelLayer",
                "CONFIG": {"root": str(tmp_path / "layer")},
            }
        }
    return request.param


async def test_owner_gets_current_status_then_live_changes(channel_layer_kind):
    content = await database_sync_to_async(ContentFactory)(status=ContentStatus.QUEUED)
    communicator = await connect(content.id, user=content.owner)
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "status",
        "status": "queued",
        "error": None,
        "overall": 0,
        "label": "Waiting for an encoder",
        "retryable": False,
    }
    await database_sync_to_async(content_status_set)(
        content=content, status=ContentStatus.PROCESSING
    )
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "status",
        "status": "processing",
        "error": None,
        "overall": 32,  # processing starts after the upload's and the queue's share
        "label": "Processing",
        "retryable": False,
    }
    await communicator.disconnect()


async def test_staff_may_follow_any_content():
    content = await database_sync_to_async(ContentFactory)(status=ContentStatus.FAILED, error="bad")
    staff = await database_sync_to_async(StaffFactory)()
    communicator = await connect(content.id, user=staff)
    message = await communicator.receive_json_from(timeout=5)
    assert message.items() >= {"type": "status", "status": "failed", "error": "bad"}.items()
    await communicator.disconnect()


async def closed(communicator: WebsocketCommunicator, code: int) -> None:
    """The client's side of the close handshake, as a server reports it; then the application
    must end by itself (asgiref's wait() cancels it silently at its timeout)."""
    await communicator.send_input({"type": "websocket.disconnect", "code": code})
    await communicator.wait(timeout=5)
    assert not communicator.future.cancelled(), "the application did not end after the close"


async def test_anonymous_is_closed_with_4401():
    content = await database_sync_to_async(ContentFactory)()
    communicator = await connect(content.id)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await closed(communicator, 4401)


async def test_bad_token_is_anonymous():
    content = await database_sync_to_async(ContentFactory)()
    communicator = await connect(content.id, token="sg_wrong")
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await closed(communicator, 4401)


async def test_other_user_is_closed_with_4404_even_for_ready_content():
    content = await database_sync_to_async(ContentFactory)(status=ContentStatus.READY)
    stranger = await database_sync_to_async(UserFactory)()
    communicator = await connect(content.id, user=stranger)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    await closed(communicator, 4404)


async def test_bearer_client_without_origin_connects():
    """Native apps send no Origin; the token, not a cookie, authenticates them."""
    content = await database_sync_to_async(ContentFactory)(status=ContentStatus.DRAFT)
    communicator = await connect(content.id, user=content.owner, origin=None)
    assert (await communicator.receive_json_from(timeout=5))["status"] == "draft"
    await communicator.disconnect()


async def test_cookie_handshake_from_a_foreign_origin_is_rejected():
    content = await database_sync_to_async(ContentFactory)()
    communicator = WebsocketCommunicator(
        application,
        f"/ws/contents/{content.id}/",
        headers=[(b"origin", b"https://evil.example"), (b"host", b"127.0.0.1")],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect(timeout=5)  # the application ends within the test
