"""The event types and their payloads: pure code, no ORM.

A payload follows Standard Webhooks: ``{"type", "timestamp", "data"}``. ``data`` carries ids and
what a receiver needs to act (title, status, the error of a failure); never a secret, never a
playback or stream URL (those are per viewer, asked for with POST .../playback/).
"""

import json
import secrets
from base64 import b64encode
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

EVENT_TYPES = {
    "content.created": "A draft content was created.",
    "upload.completed": "A content's upload was stored and checked; encoding is queued.",
    "content.ready": "A content finished processing and can be watched.",
    "content.failed": "Processing a content failed; data.error says why.",
    "content.deleted": "A content was deleted.",
    "registration.confirmed": "A content's on-chain registration was confirmed.",
    "access.purchased": "A purchase of access to a content was indexed on chain.",
}
TEST_EVENT = "webhook.test"  # POST /api/v1/webhooks/<id>/test/; not subscribable
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def secret_new() -> str:
    """A signing secret as Standard Webhooks writes them: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + b64encode(secrets.token_bytes(32)).decode()


def event_types_check(events: Any) -> list[str]:
    """The subscribed types, in our order; ValueError naming what is wrong."""
    if not isinstance(events, list) or not events:
        raise ValueError(f"Choose at least one event: {', '.join(EVENT_TYPES)}.")
    unknown = sorted({str(event) for event in events} - set(EVENT_TYPES))
    if unknown:
        raise ValueError(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}."
        )
    return [event for event in EVENT_TYPES if event in events]


def event_body(*, event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The JSON posted (and signed) for an event that happened ``at``."""
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": stamp, "data": data},
        separators=(",", ":"),
        cls=DjangoJSONEncoder,
    )


def content_data(content: Any) -> dict[str, Any]:
    """What every content event says about its content (a Content, read as it is)."""
    data = {
        "content_id": str(content.id),
        "title": content.title,
        "status": content.status,
        "duration": content.duration,
        "width": content.width,
        "height": content.height,
    }
    if content.status == "failed":
        data["error"] = content.error
        data["error_kind"] = content.error_kind
    return data
