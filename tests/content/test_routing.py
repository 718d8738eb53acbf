"""Websocket routing through the whole ASGI application: a path no route serves closes with
4404, as an unknown content does, instead of failing the handshake with a 500."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.access.services import api_token_create
from apps.content.consumers import CLOSE_NOT_FOUND
from streamgate.asgi import application
from tests.factories import CreatorFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path",
    [
        "/ws/contents/not-a-uuid/",
        "/ws/contents/",
        "/ws/contents/00000000-0000-0000-0000-000000000000/extra/",
        "/ws/nothing/",
        "/",
    ],
)
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "bearer"])
async def test_unknown_websocket_paths_close_with_4404(path, signed_in):
    # The site's own origin: a cookie handshake from anywhere else is refused before routing.
    headers = [(b"host", b"127.0.0.1"), (b"origin", settings.STREAMGATE_PUBLIC_URL.encode())]
    if signed_in:
        _, token = await database_sync_to_async(api_token_create)(
            user=await database_sync_to_async(CreatorFactory)()
        )
        headers.append((b"authorization", f"Bearer {token}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    await communicator.wait()
