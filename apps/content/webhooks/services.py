"""Every write to webhooks: endpoints, events (in the caller's transaction) and deliveries."""

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.content.exceptions import NotACreator, WebhookDisabled, WebhookInvalid
from apps.content.selectors import user_is_creator
from apps.content.webhooks import tasks
from apps.content.webhooks.events import (
    EVENT_TYPES,
    TEST_EVENT,
    event_body,
    event_types_check,
    secret_new,
)
from apps.content.webhooks.guard import AddressPolicy, UrlRefused, url_check
from apps.content.webhooks.http import Attempt
from apps.content.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from streamgate.celery import enqueue_on_commit
from streamgate.metrics import WEBHOOK_DELIVERIES

logger = logging.getLogger(__name__)

UNCHANGED: Any = object()
MAX_DESCRIPTION = 200


def address_policy() -> AddressPolicy:
    """Where webhooks may go, from the settings (read at each use: tests change them)."""
    from streamgate.settings.environment import networks_parse

    return AddressPolicy(
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
        allowed_networks=networks_parse(
            settings.WEBHOOK_ALLOWED_NETWORKS, name="WEBHOOK_ALLOWED_NETWORKS"
        ),
    )


def _url(url: Any) -> str:
    try:
        return url_check(url, policy=address_policy())
    except UrlRefused as error:
        raise WebhookInvalid(error.message, reason=error.reason) from None


def _events(events: Any) -> list[str]:
    try:
        return event_types_check(events)
    except ValueError as error:
        raise WebhookInvalid(str(error), reason="events") from None


def _description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise WebhookInvalid(
            f"The description is text of at most {MAX_DESCRIPTION} characters.",
            reason="description",
        )
    return description.strip()


@transaction.atomic
def endpoint_create(
    *, owner: User, url: str, events: list[str], description: str = ""
) -> WebhookEndpoint:
    """A new endpoint of ``owner`` (a creator) with a fresh signing secret, read from the
    returned instance once: the API shows it only in this answer."""
    if not user_is_creator(owner):
        raise NotACreator("Only creators can register webhooks.", reason="not_a_creator")
    endpoint = WebhookEndpoint(
        owner=owner,
        url=_url(url),
        events=_events(events),
        description=_description(description),
        secret=secret_new(),
    )
    # Counted under a lock on the owner's row: two creations at once cannot both pass.
    User.objects.select_for_update().filter(pk=owner.pk).first()
    if WebhookEndpoint.objects.filter(owner=owner).count() >= settings.WEBHOOK_ENDPOINTS_PER_USER:
        raise WebhookInvalid(
            f"You have {settings.WEBHOOK_ENDPOINTS_PER_USER} endpoints already, the most "
            "allowed: delete one first.",
            reason="too_many_endpoints",
        )
    endpoint.save(force_insert=True)
    logger.info("webhook endpoint created", extra={"endpoint_id": str(endpoint.id)})
    return endpoint


@transaction.atomic
def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str = UNCHANGED,
    events: list[str] = UNCHANGED,
    description: str = UNCHANGED,
    enabled: bool = UNCHANGED,
) -> WebhookEndpoint:
    """Change what is given. Enabling a disabled endpoint clears why it was disabled and its
    failure streak; deliveries resume with the next event (or a redelivery)."""
    changes: dict[str, Any] = {}
    if url is not UNCHANGED:
        changes["url"] = _url(url)
    if events is not UNCHANGED:
        changes["events"] = _events(events)
    if description is not UNCHANGED:
        changes["description"] = _description(description)
    if enabled is not UNCHANGED and bool(enabled) != endpoint.enabled:
        changes["enabled"] = bool(enabled)
        if enabled:
            changes.update(disabled_reason="", disabled_at=None, failing_since=None)
        else:
            changes.update(disabled_reason="Disabled by its owner.", disabled_at=timezone.now())
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.save(update_fields=[*changes, "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log; nothing more is sent to it."""
    endpoint.delete()


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new signing secret (read once from the instance). The current one keeps signing
    beside it for WEBHOOK_SECRET_OVERLAP_HOURS, so receivers can switch without a gap."""
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(
        hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS
    )
    endpoint.secret = secret_new()
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    logger.info("webhook secret rotated", extra={"endpoint_id": str(endpoint.id)})
    return endpoint


def signing_secrets(*, endpoint: WebhookEndpoint, at: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous during its overlap."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and at < expires:
        found.append(endpoint.previous_secret)
    return found


@transaction.atomic
def webhook_event_emit(
    *,
    event_type: str,
    owner_id: int,
    data: dict[str, Any],
    content_id: uuid.UUID | str | None = None,
    key: str | None = None,
) -> WebhookEvent | None:
    """Announce an event to the owner's enabled endpoints that want it. Call inside the
    transaction of the change it announces: the event and its deliveries commit (or roll
    back) with it, and the pumps are queued through the outbox. ``key`` makes a repeated
    announcement (an indexer replay) a no-op. None when nobody listens."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = [
        endpoint_id
        for endpoint_id, events in WebhookEndpoint.objects.filter(
            owner_id=owner_id, enabled=True
        ).values_list("id", "events")
        if event_type in events
    ]
    if not endpoints:
        return None
    return _event_write(event_type, owner_id, data, content_id, key, endpoints)


def _event_write(
    event_type: str,
    owner_id: int,
    data: dict[str, Any],
    content_id: uuid.UUID | str | None,
    key: str | None,
    endpoints: list[uuid.UUID],
) -> WebhookEvent | None:
    now = timezone.now()
    event = WebhookEvent(
        type=event_type,
        owner_id=owner_id,
        content_id=content_id,
        key=key,
        body=event_body(event_type=event_type, data=data, at=now),
    )
    try:
        with transaction.atomic():  # a savepoint: a duplicate key leaves the caller's work
            event.save(force_insert=True)
    except IntegrityError:
        if key and WebhookEvent.objects.filter(key=key).exists():
            return None  # announced before
        raise
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint_id, event=event, content_id=content_id, next_attempt_at=now
        )
        for endpoint_id in endpoints
    )
    # robust: the change this event announces has committed; a wake-up lost to an error here
    # is found by beat's sweep (WEBHOOK_SWEEP_SECONDS).
    transaction.on_commit(lambda: _pumps_wake(endpoints), robust=True)
    return event


# A pump queued this recently and not started yet will find the new deliveries when it starts;
# one queued earlier may have been lost with its worker, and another is queued.
PUMP_QUEUED_FRESH = timedelta(seconds=5)


def _pumps_wake(endpoint_ids: list[uuid.UUID]) -> None:
    """After an event's commit: queue a pump for each of its endpoints that has none working
    and none just queued. A working pump needs no other: after releasing its lease (later than
    this commit, since the lease was held when this looked) it looks for due deliveries again.
    In a burst this keeps the queue to about one pump per endpoint, not one per event."""
    now = timezone.now()
    for endpoint_id in endpoint_ids:
        woken = (
            WebhookEndpoint.objects.filter(pk=endpoint_id)
            .filter(Q(pump_expires_at__isnull=True) | Q(pump_expires_at__lt=now))
            .filter(Q(pump_queued_at__isnull=True) | Q(pump_queued_at__lt=now - PUMP_QUEUED_FRESH))
            .update(pump_queued_at=now)
        )
        if woken:
            enqueue_on_commit(tasks.webhook_endpoint_pump, str(endpoint_id))


def _active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise WebhookDisabled(
            "This endpoint is disabled; enable it first.", reason="endpoint_disabled"
        )


@transaction.atomic
def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A ``webhook.test`` event to this endpoint alone, whatever it subscribes to."""
    _active(endpoint)
    now = timezone.now()
    data = {"endpoint_id": str(endpoint.id), "message": "A test event sent from StreamGate."}
    event = WebhookEvent.objects.create(
        type=TEST_EVENT,
        owner_id=endpoint.owner_id,
        body=event_body(event_type=TEST_EVENT, data=data, at=now),
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=now)
    enqueue_on_commit(tasks.webhook_endpoint_pump, str(endpoint.id))
    return delivery


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event again (same ``webhook-id``, so receivers can tell), as a new
    delivery with its own attempts; it follows the content's earlier pending events."""
    endpoint = delivery.endpoint
    _active(endpoint)
    again = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=delivery.event_id,
        content_id=delivery.content_id,
        next_attempt_at=timezone.now(),
    )
    enqueue_on_commit(tasks.webhook_endpoint_pump, str(endpoint.id))
    return again


def _retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: give up."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    jitter = settings.WEBHOOK_RETRY_JITTER
    return schedule[attempts - 1] * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311


@transaction.atomic
def delivery_record(
    *, delivery: WebhookDelivery, endpoint: WebhookEndpoint, attempt: Attempt, at: datetime
) -> str:
    """Write what an attempt saw, schedule the retry or give up, keep the endpoint's failure
    streak (disabling it after WEBHOOK_DISABLE_AFTER_DAYS of failures); the outcome."""
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": at,
        "last_status_code": attempt.status_code,
        "last_latency_ms": attempt.latency_ms,
        "last_response": attempt.excerpt,
        "last_error": attempt.error,
        "next_attempt_at": None,
    }
    delay = None if attempt.succeeded or attempt.refused else _retry_delay(attempts)
    if attempt.succeeded:
        outcome = "succeeded"
        fields.update(status=DeliveryStatus.SUCCEEDED, finished_at=now)
    elif delay is not None:
        outcome = "retrying"
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
    else:
        outcome = "refused" if attempt.refused else "failed"
        fields.update(status=DeliveryStatus.FAILED, finished_at=now)
    WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**fields)
    if attempt.succeeded:
        if endpoint.failing_since is not None:  # the pump keeps it current between attempts
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    else:
        _failure_streak(endpoint, at=at, error=attempt.error)
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    logger.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery.pk,
            "endpoint_id": str(endpoint.pk),
            "outcome": outcome,
            "status_code": attempt.status_code,
            "attempt": attempts,
        },
    )
    return outcome


def _failure_streak(endpoint: WebhookEndpoint, *, at: datetime, error: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
        failing_since=at
    )
    since = (
        WebhookEndpoint.objects.filter(pk=endpoint.pk)
        .values_list("failing_since", flat=True)
        .first()
    )
    limit = timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    if since is None or at - since < limit:
        return
    now = timezone.now()
    reason = (
        f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery failed since "
        f"{since:%Y-%m-%d %H:%M} UTC. The last error: {error[:300]} Fix the endpoint, then "
        "enable it again."
    )
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now
    )
    if not disabled:
        return
    given_up = WebhookDelivery.objects.filter(
        endpoint_id=endpoint.pk, status=DeliveryStatus.PENDING
    ).update(
        status=DeliveryStatus.FAILED,
        finished_at=now,
        next_attempt_at=None,
        last_error="Not sent: the endpoint was disabled after failing continuously.",
    )
    WEBHOOK_DELIVERIES.labels(outcome="failed").inc(given_up)
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": str(endpoint.pk)})
    endpoint_id = endpoint.pk
    transaction.on_commit(lambda: _owner_notify(endpoint_id))


def _owner_notify(endpoint_id: uuid.UUID) -> None:
    """Email the owner that their endpoint was disabled (the studio page and the API's
    ``disabled_reason`` say it too, so a mail that cannot be sent is only logged)."""
    endpoint = WebhookEndpoint.objects.select_related("owner").filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.owner.email:
        logger.info("disabled webhook: owner has no email", extra={"endpoint_id": str(endpoint_id)})
        return
    try:
        send_mail(
            subject="StreamGate: your webhook endpoint was disabled",
            message=(
                f"Hello {endpoint.owner.get_username()},\n\n"
                f"Your webhook endpoint {endpoint.url} was disabled.\n\n"
                f"{endpoint.disabled_reason}\n\n"
                f"Manage it at {settings.STREAMGATE_PUBLIC_URL}/studio/webhooks/\n"
            ),
            from_email=None,
            recipient_list=[endpoint.owner.email],
        )
    except Exception as error:  # noqa: BLE001 - the state is visible on the page and the API
        logger.warning(
            "disabled webhook: notice not mailed",
            extra={"endpoint_id": str(endpoint_id), "error": repr(error)},
        )


def deliveries_purge(*, now: datetime | None = None) -> int:
    """Delete finished deliveries older than WEBHOOK_RETENTION_DAYS, and events none names."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    deleted, _ = WebhookDelivery.objects.filter(finished_at__lt=cutoff).delete()
    WebhookEvent.objects.filter(created_at__lt=cutoff).filter(
        ~Q(pk__in=WebhookDelivery.objects.values("event_id"))
    ).delete()
    return deleted
