"""ASGI entry point served by uvicorn: HTTP through Django, websockets through Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.local")

# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from streamgate.streaming import StreamingBodyASGIHandler  # noqa: E402

django_asgi_app = StreamingBodyASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.access.websocket import websocket_auth_stack  # noqa: E402
from apps.content.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_auth_stack(URLRouter(websocket_urlpatterns)),
    }
)
