"""The one way messages reach a content's websocket listeners.

Services call :func:`content_broadcast`; the message goes to the channel group after the
transaction commits, so listeners never hear of a state the database then rolls back.
Consumers only relay what arrives here.
"""

import asyncio
import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from streamgate.breaker import channel_layer_breaker
from streamgate.outages import CACHE, outage_of, outage_recorded

logger = logging.getLogger(__name__)

EVENT_TYPE = "content.event"
SEND_TIMEOUT_SECONDS = 2


def content_group(content_id: uuid.UUID | str) -> str:
    """The Channels group of one content: ``content.<id>``."""
    return f"content.{content_id}"


def content_broadcast(*, content_id: uuid.UUID | str, message: dict[str, Any]) -> None:
    """Send ``message`` (a contract websocket message) to the content's group after commit;
    at once outside a transaction."""
    group = content_group(content_id)
    # transaction.on_commit() asks the connection whether it autocommits, which opens one:
    # an encode reporting progress while the database is away would fail on that alone.
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _group_send(group, message))
    else:
        _group_send(group, message)


async def _send_within(layer, group: str, message: dict[str, Any]) -> None:
    await asyncio.wait_for(
        layer.group_send(group, {"type": EVENT_TYPE, "message": message}), SEND_TIMEOUT_SECONDS
    )


def _group_send(group: str, message: dict[str, Any]) -> None:
    # Progress is advisory: a listener that misses one message gets the state on reconnect.
    # So a send never fails the caller's work, nor makes it wait on a Redis that is away.
    breaker = channel_layer_breaker()
    if breaker is not None and not breaker.allow():
        return  # Redis failed moments ago
    try:
        async_to_sync(_send_within)(get_channel_layer(), group, message)
    except Exception as error:
        if breaker is not None and (isinstance(error, TimeoutError) or outage_of(error)):
            breaker.failed(error)
            outage_recorded(CACHE, error, action="degraded", group=group)
            return
        # Anything else is logged with its traceback, never hidden.
        logger.exception("channel layer send failed", extra={"group": group})
        return
    if breaker is not None:
        breaker.answered()
