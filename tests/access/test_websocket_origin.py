"""Progress websockets opened on the session cookie: only pages of this site's exact origin
(STREAMGATE_PUBLIC_URL, and CSRF_TRUSTED_ORIGINS) may open them; another scheme, port or host
is another site. Bearer-token handshakes carry no ambient credential and are not checked."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.access.services import api_token_create
from apps.content.models import ContentStatus
from streamgate.asgi import application
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "https://video.example"


@pytest.fixture(autouse=True)
def _site(settings):
    # The origin check runs before any consumer; channels' in-memory layer serves what follows.
    # (With the Redis layer, every test's event loop closed on a consumer still subscribed to
    # it, and once on CI that teardown hung for the whole 300 s timeout; the Redis layer has
    # its own tests in tests/content/test_consumers.py and tests/streamgate.)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMGATE_PUBLIC_URL = PUBLIC
    settings.ALLOWED_HOSTS = ["video.example", "127.0.0.1", "localhost", "[::1]"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://studio.example:8443", "https://*.example.org"]


@database_sync_to_async
def owned_draft() -> tuple[str, str, str]:
    """A draft, its owner's session cookie (signed in as a browser would be) and bearer token."""
    content = ContentFactory(status=ContentStatus.DRAFT)
    browser = Client()
    browser.force_login(content.owner)
    _, token = api_token_create(user=content.owner)
    return str(content.id), browser.cookies["sessionid"].value, token


async def handshake(content_id: str, *, origin: str | None, cookie: str = "", token: str = ""):
    headers = [(b"host", b"video.example")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/contents/{content_id}/", headers=headers
    )
    connected, _ = await communicator.connect(timeout=5)
    try:
        return await communicator.receive_json_from(timeout=5) if connected else None
    finally:
        # A refused handshake leaves the application (channels' WebsocketDenier) waiting for
        # the client's disconnect: send it, so that the application ends within the test
        # instead of being cancelled mid-wait when the test's event loop closes.
        await communicator.disconnect(timeout=5)


REFUSED = [
    "http://127.0.0.1:9999",
    "http://localhost:3000",
    "https://127.0.0.1",
    "http://video.example",  # the scheme
    "https://video.example:8443",  # the port
    "https://evil.example",
    "https://video.example.evil.example",
    "https://studio.example",  # a trusted origin's host on another port
    "https://app.example.org",  # a CSRF wildcard is not an origin
    "null",
    "",
    None,
]


@pytest.mark.parametrize("origin", REFUSED)
async def test_a_cookie_handshake_from_another_origin_is_refused(origin):
    content_id, cookie, _ = await owned_draft()
    assert await handshake(content_id, origin=origin, cookie=cookie) is None


@pytest.mark.parametrize(
    "origin",
    [PUBLIC, "https://video.example:443", "HTTPS://Video.Example", "https://studio.example:8443"],
)
async def test_a_cookie_handshake_from_the_site_s_exact_origin_is_served(origin):
    content_id, cookie, _ = await owned_draft()
    message = await handshake(content_id, origin=origin, cookie=cookie)
    assert message.items() >= {"type": "status", "status": "draft", "error": None}.items()


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:9999"])
async def test_a_bearer_handshake_is_served_from_anywhere(origin):
    content_id, _, token = await owned_draft()
    message = await handshake(content_id, origin=origin, token=token)
    assert message.items() >= {"type": "status", "status": "draft", "error": None}.items()
