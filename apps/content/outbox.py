"""Sending tasks through the outbox: every enqueue writes a row in the caller's transaction;
the commit sends it and deletes the row; the relay sends what the broker missed.

A task may thus be sent twice (the relay took a row whose first send was still under way, or
the row could not be deleted after its send); tasks are idempotent, so that costs a no-op run.
A task is never lost once the transaction that asked for it committed.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

import redis.exceptions
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from apps.content.models import OutboxMessage
from streamgate.celery import app
from streamgate.tracing import context_attached, context_carrier

logger = logging.getLogger(__name__)

# What a broker that is away raises from a publish (kombu re-raises connection errors as its
# OperationalError; a socket error may escape as itself).
BROKER_ERRORS = (
    BrokerUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
# One quick second try (a pooled connection that died with the broker's restart is replaced),
# then give up: the row is kept and the relay sends it, so there is nothing to wait for.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}


def outbox_add(
    *, task: str, args: tuple | list, kwargs: dict[str, Any], options: dict[str, Any]
) -> OutboxMessage:
    """Record a task to send; call inside the transaction whose commit asks for it."""
    now = timezone.now()
    return OutboxMessage.objects.create(
        task=task,
        args=list(args),
        kwargs=kwargs,
        options=options,
        created_at=now,
        send_after=now + timedelta(seconds=settings.OUTBOX_GRACE_SECONDS),
        trace_context=context_carrier(),
    )


def outbox_send(*, message: OutboxMessage) -> bool:
    """Publish the message's task and delete the row; False (the row kept, a warning logged)
    when the broker is away. A broker that refuses connections fails it within milliseconds;
    one that accepts and never answers, after the transport's socket timeout."""
    try:
        # In the sender's trace, wherever this runs: a commit hook after the request's span
        # ended, or the relay in beat's worker (the task's spans then still join that trace).
        with context_attached(message.trace_context):
            app.send_task(
                message.task,
                args=message.args,
                kwargs=message.kwargs,
                # Nobody waits for these results; subscribing to them is a second Redis round
                # trip that, with Redis away, retried for 19 s and then raised.
                ignore_result=True,
                retry_policy=PUBLISH_RETRY_POLICY,
                **message.options,
            )
    except BROKER_ERRORS as error:
        logger.warning(
            "task not sent, the broker is unavailable; the outbox relay will send it",
            extra={"task": message.task, "outbox_id": message.pk, "error": repr(error)},
        )
        return False
    try:
        OutboxMessage.objects.filter(pk=message.pk).delete()
    except DatabaseError:
        logger.warning(
            "task sent but still in the outbox; the relay may send it again",
            extra={"task": message.task, "outbox_id": message.pk},
            exc_info=True,
        )
    return True


def outbox_relay(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Send the tasks whose send failed or never happened, oldest first. Each row is claimed
    with a conditional update (its ``send_after`` pushed ahead) before it is sent, so relays
    running at once never send one row together; a broker that fails stops the run."""
    now = now or timezone.now()
    counts = {"sent": 0, "unsent": 0}
    lease = timedelta(seconds=settings.OUTBOX_GRACE_SECONDS)
    for message in OutboxMessage.objects.filter(send_after__lte=now)[:batch]:
        claimed = OutboxMessage.objects.filter(pk=message.pk, send_after=message.send_after).update(
            send_after=now + lease, attempts=F("attempts") + 1
        )
        if not claimed:
            continue
        _shorten_countdown(message, now)
        if not outbox_send(message=message):
            counts["unsent"] += 1
            break  # the broker is away again: the rest waits for the next run
        counts["sent"] += 1
    if any(counts.values()):
        logger.info("outbox relayed", extra=counts)
    return counts


def _shorten_countdown(message: OutboxMessage, now: datetime) -> None:
    """A delayed task (``countdown``) sent late waits only for what is left of its delay."""
    countdown = message.options.get("countdown")
    if countdown:
        waited = (now - message.created_at).total_seconds()
        message.options = {**message.options, "countdown": max(0.0, countdown - waited)}
