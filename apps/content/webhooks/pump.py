"""Working one endpoint's deliveries: the pump.

One pump per endpoint at a time (a lease on the endpoint row, taken with a conditional
update) sends its due deliveries oldest first, one at a time; so a slow or dead endpoint holds
one worker thread, never the others' deliveries, and a content's events leave in order (a
delivery waits while an earlier one of its content is pending). Between attempts it holds no
row lock. A pump works for WEBHOOK_PUMP_SECONDS, then queues its successor; a retry due within
a minute queues a delayed pump, later ones are found by beat's sweep (webhooks_dispatch), which
also restarts the work of a pump whose worker died (its lease lapses).
"""

import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from apps.content.webhooks import tasks
from apps.content.webhooks.http import post
from apps.content.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from apps.content.webhooks.selectors import (
    deliveries_due_batch,
    delivery_next_due,
    delivery_next_wake,
    endpoints_idle_with_work,
)
from apps.content.webhooks.services import address_policy, delivery_record, signing_secrets
from streamgate.celery import enqueue_on_commit, enqueue_on_commit_with

logger = logging.getLogger(__name__)

DELAYED_PUMP_MAX = 60.0  # seconds: later retries are left to the sweep
USER_AGENT = "StreamGate-Webhooks/1.0"


def _lease() -> timedelta:
    return timedelta(seconds=settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_TIMEOUT + 30)


def signed_headers(*, endpoint: WebhookEndpoint, event: WebhookEvent, at: datetime) -> dict:
    """Standard Webhooks headers for one attempt at ``at``: one ``v1`` signature per signing
    secret, space-separated (the previous secret's too during a rotation's overlap)."""
    at = at.astimezone(UTC)
    signatures = [
        Webhook(secret).sign(msg_id=event.message_id, timestamp=at, data=event.body)
        for secret in signing_secrets(endpoint=endpoint, at=at)
    ]
    return {
        "webhook-id": event.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def attempt_run(*, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> str:
    """One attempt of ``delivery``, recorded; the outcome."""
    at = timezone.now()
    attempt = post(
        endpoint.url,
        delivery.event.body.encode(),
        signed_headers(endpoint=endpoint, event=delivery.event, at=at),
        policy=address_policy(),
        nameservers=settings.WEBHOOK_DNS_NAMESERVERS,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT,
        timeout=settings.WEBHOOK_TIMEOUT,
    )
    return delivery_record(delivery=delivery, endpoint=endpoint, attempt=attempt, at=at)


def pump_run(*, endpoint_id: str) -> int:
    """Send the endpoint's due deliveries for a while if no other pump is; how many."""
    token = secrets.token_hex(16)
    now = timezone.now()
    taken = (
        WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True)
        .filter(Q(pump_expires_at__isnull=True) | Q(pump_expires_at__lt=now))
        .update(pump_token=token, pump_expires_at=now + _lease(), pump_queued_at=None)
    )
    if not taken:
        return 0
    sent, started, out_of_time = 0, time.monotonic(), False
    renewed = checked = started
    try:
        endpoint = _ours(endpoint_id, token)
        while endpoint is not None:
            batch = deliveries_due_batch(endpoint_id=endpoint_id, now=timezone.now())
            if not batch:
                break
            stopped: set = set()  # contents whose delivery failed in this batch wait
            for delivery in batch:
                if delivery.content_id is not None and delivery.content_id in stopped:
                    continue
                outcome = attempt_run(endpoint=endpoint, delivery=delivery)
                sent += 1
                if outcome == "succeeded":
                    endpoint.failing_since = None
                else:
                    endpoint.failing_since = endpoint.failing_since or timezone.now()
                    stopped.add(delivery.content_id)
                now = time.monotonic()
                if now - renewed > _lease().total_seconds() / 3:
                    renewed = now
                    if not WebhookEndpoint.objects.filter(pk=endpoint_id, pump_token=token).update(
                        pump_expires_at=timezone.now() + _lease()
                    ):
                        return sent  # taken over: the other pump carries on
                if now - checked > 1 or outcome != "succeeded":
                    checked = now  # disabled, deleted or taken over meanwhile?
                    endpoint = _ours(endpoint_id, token)
                    if endpoint is None:
                        return sent
                if now - started > settings.WEBHOOK_PUMP_SECONDS:
                    out_of_time = True
                    break
            if out_of_time:
                break
    finally:
        WebhookEndpoint.objects.filter(pk=endpoint_id, pump_token=token).update(
            pump_token="", pump_expires_at=None
        )
    # Work that came while we stopped (its own pump found our lease) or that we left.
    if out_of_time or delivery_next_due(endpoint_id=endpoint_id, now=timezone.now()):
        enqueue_on_commit(tasks.webhook_endpoint_pump, endpoint_id)
    else:
        _wake_later(endpoint_id)
    return sent


def _ours(endpoint_id: str, token: str) -> WebhookEndpoint | None:
    """The endpoint while it is enabled and our pump still holds it."""
    return WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True, pump_token=token).first()


def _wake_later(endpoint_id: str) -> None:
    """Queue a delayed pump for the next retry if it is due within a minute and none is
    queued for then already."""
    due = delivery_next_wake(endpoint_id=endpoint_id)
    if due is None:
        return
    delay = (due - timezone.now()).total_seconds()
    if delay > DELAYED_PUMP_MAX:
        return  # the sweep finds it
    now = timezone.now()
    booked = (
        WebhookEndpoint.objects.filter(pk=endpoint_id)
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lt=now) | Q(wake_at__gt=due))
        .update(wake_at=due)
    )
    if booked:
        enqueue_on_commit_with(
            tasks.webhook_endpoint_pump, (endpoint_id,), options={"countdown": max(0.0, delay)}
        )


def pumps_dispatch(*, now: datetime | None = None) -> int:
    """Beat: queue a pump for every endpoint with due work and no pump; how many."""
    now = now or timezone.now()
    endpoint_ids = list(endpoints_idle_with_work(now=now).values_list("pk", flat=True)[:1000])
    for endpoint_id in endpoint_ids:
        enqueue_on_commit(tasks.webhook_endpoint_pump, str(endpoint_id))
    if endpoint_ids:
        logger.info("webhook pumps dispatched", extra={"endpoints": len(endpoint_ids)})
    return len(endpoint_ids)
