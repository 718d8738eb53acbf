"""Websocket: ``/ws/contents/<id>/`` relays a content's progress and status to its owner."""

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.content.realtime import EVENT_TYPE, content_group
from apps.content.selectors import content_get_manageable, content_status_message
from streamgate.breaker import CircuitOpen, channel_layer_breaker
from streamgate.metrics import WEBSOCKETS
from streamgate.outages import CLOSE_TRY_AGAIN_LATER, outage_of, outage_recorded

# Close codes in the 4000-4999 range are ours (RFC 6455 leaves them to applications).
CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_FOUND = 4404
# Joining the group is one short Redis call; a Redis that does not answer, like a database that
# does not, closes the socket with 1013 (Try Again Later) rather than holding the handshake.
JOIN_TIMEOUT_SECONDS = 2


class ContentProgressConsumer(AsyncJsonWebsocketConsumer):
    """Authenticates, joins the content's group, sends the current status, then relays.

    A refused connection is accepted and then closed with a 44xx code, because browsers do not
    expose the HTTP status of a rejected handshake but do expose the close code.
    """

    group: str | None = None
    accepted = False

    async def accept(self, *args: Any, **kwargs: Any) -> None:
        await super().accept(*args, **kwargs)
        self.accepted = True

    async def connect(self) -> None:
        try:
            await self._open()
        except Exception as error:
            dependency = outage_of(error)
            if dependency is None:
                raise
            # Closed from here, at once: the layer's receive that Channels cancels when a
            # consumer fails can be slow to stop right after a Redis outage.
            outage_recorded(dependency, error, action="refused", path=self.scope.get("path", ""))
            if not self.accepted:
                await self.accept()
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def _open(self) -> None:
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
        await self._join(self.group)
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

    async def _join(self, group: str) -> None:
        """Join ``group``; a Redis that failed moments ago or does not answer now raises a
        redis error (then ``connect`` closes the socket with 1013)."""
        breaker = channel_layer_breaker()
        if breaker is not None and not breaker.allow():
            raise CircuitOpen("the channel layer's Redis failed moments ago")
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(group, self.channel_name), JOIN_TIMEOUT_SECONDS
            )
        except (TimeoutError, RedisError) as error:
            if breaker is not None:
                breaker.failed(error)
            if isinstance(error, RedisError):
                raise
            raise RedisTimeoutError("the channel layer did not answer") from error
        if breaker is not None:
            breaker.answered()

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
