"""ASGI entry point served by uvicorn: HTTP through Django, websockets through Channels.

Six layers answer hot requests before Django: public (encrypted) media files
(apps/access/public_files.py), stream files from disk (apps/access/stream_fast.py), HLS keys
from remembered gate decisions (apps/access/key_decisions.py), accepted player beacons
(apps/access/beacon_fast.py), bearer-authenticated tus PATCHes (apps/access/upload_fast.py)
and replays of the content API's reads (streamgate/edge.py)."""

import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamgate.settings.production")

from streamgate import allocator

allocator.tune()  # before the server reads a request body (streamgate/allocator.py)

# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from streamgate.tracing import tracing_configure  # noqa: E402

tracing_configure(service="streamgate-web")  # before the handler loads Django's middleware

from streamgate.database import DatabaseWaitLimit  # noqa: E402
from streamgate.edge import EdgeCache  # noqa: E402
from streamgate.outages import WebsocketOutageGuard  # noqa: E402
from streamgate.streaming import StreamingBodyASGIHandler  # noqa: E402

django_asgi_app = StreamingBodyASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.access.beacon_fast import BeaconFast  # noqa: E402
from apps.access.key_decisions import KeyFiles  # noqa: E402
from apps.access.public_files import PublicFiles  # noqa: E402
from apps.access.stream_fast import StreamFiles  # noqa: E402
from apps.access.upload_fast import UploadPatchFast  # noqa: E402
from apps.access.websocket import websocket_auth_stack  # noqa: E402
from apps.content.routing import websocket_urlpatterns  # noqa: E402

application = DatabaseWaitLimit(
    ProtocolTypeRouter(
        {
            "http": PublicFiles(
                StreamFiles(KeyFiles(BeaconFast(UploadPatchFast(EdgeCache(django_asgi_app)))))
            ),
            "websocket": WebsocketOutageGuard(
                websocket_auth_stack(URLRouter(websocket_urlpatterns))
            ),
        }
    ),
    seconds=settings.DATABASE_WAIT_SECONDS,
)

if settings.SENTRY_DSN:  # errors in websocket consumers too, not only in HTTP views
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    application = SentryAsgiMiddleware(application)
