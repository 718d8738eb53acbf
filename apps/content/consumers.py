"""Websocket: ``/ws/contents/<id>/`` relays a content's progress and status to its owner."""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from apps.content.realtime import EVENT_TYPE, content_group
from apps.content.selectors import content_get_manageable, content_status_message
from streamgate.metrics import WEBSOCKETS

# Close codes in the 4000-4999 range are ours (RFC 6455 leaves them to applications).
CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_FOUND = 4404


class ContentProgressConsumer(AsyncJsonWebsocketConsumer):
    """Authenticates, joins the content's group, sends the current status, then relays.

    A refused connection is accepted and then closed with a 44xx code, because browsers do not
    expose the HTTP status of a rejected handshake but do expose the close code.
    """

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        content_id = self.scope["url_route"]["kwargs"]["content_id"]
        allowed = await database_sync_to_async(content_get_manageable)(
            user=user, content_id=content_id
        )
        if allowed is None:
            # Not found and not yours look the same: ids of others' drafts do not leak.
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Join before reading the state that is sent first: a change committed in between
        # then arrives as a message instead of being lost.
        self.group = content_group(allowed.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        current = await database_sync_to_async(content_get_manageable)(
            user=user, content_id=content_id
        )
        if current is None:  # deleted in the meantime
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(content_status_message(current))
        WEBSOCKETS.inc()
        self.counted = True

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            WEBSOCKETS.dec()
            self.counted = False
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections() in a worker thread before every handler. A
        # relayed event touches no database, and at 500 sockets those thread hops were most of
        # the cost of a fan-out (tests/benchmarks/load.py), so events skip it.
        if message["type"] == EVENT_TYPE:
            await self.content_event(message)
            return
        await super().dispatch(message)

    async def content_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["message"])

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything they send is ignored."""


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Any websocket path no route serves: closed with 4404, like an unknown content. Without
    it Channels' router raises, and the handshake fails with an HTTP 500."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
