"""The one way messages reach a content's websocket listeners.

Services call :func:`content_broadcast`; the message goes to the channel group after the
transaction commits, so listeners never hear of a state the database then rolls back.
Consumers only relay what arrives here.
"""

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

EVENT_TYPE = "content.event"


def content_group(content_id: uuid.UUID | str) -> str:
    """The Channels group of one content: ``content.<id>``."""
    return f"content.{content_id}"


def content_broadcast(*, content_id: uuid.UUID | str, message: dict[str, Any]) -> None:
    """Send ``message`` (a contract websocket message) to the content's group after commit."""
    transaction.on_commit(lambda: _group_send(content_group(content_id), message))


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(group, {"type": EVENT_TYPE, "message": message})
    except Exception:
        # Progress is advisory: a listener that misses one message gets the state on reconnect.
        # The failure is logged with its traceback, never hidden, and the caller's work goes on.
        logger.exception("channel layer send failed", extra={"group": group})
