"""Reads of webhooks shared by the API, the studio page, the pump and beat."""

import uuid
from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.content.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def endpoints_of(*, user: User | AnonymousUser) -> QuerySet[WebhookEndpoint]:
    """The user's own endpoints (staff too see only theirs)."""
    if not user.is_authenticated:
        return WebhookEndpoint.objects.none()
    return WebhookEndpoint.objects.filter(owner_id=user.pk)


def endpoint_get_for_owner(
    *, user: User | AnonymousUser, endpoint_id: uuid.UUID | str
) -> WebhookEndpoint | None:
    """The user's endpoint, or None (someone else's is as unknown as a missing one)."""
    try:
        pk = uuid.UUID(str(endpoint_id))
    except ValueError:
        return None
    return endpoints_of(user=user).filter(pk=pk).first()


def deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first."""
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-id")


def deliveries_due(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose time has come and that no earlier delivery of the same
    content to the same endpoint waits before (per-content order)."""
    earlier = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        content_id=OuterRef("content_id"),
        status=DeliveryStatus.PENDING,
        id__lt=OuterRef("id"),
    )
    return WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).filter(~Exists(earlier))


def delivery_next_due(*, endpoint_id: uuid.UUID | str, now: datetime) -> WebhookDelivery | None:
    """The oldest delivery of the endpoint that may be attempted now."""
    return (
        deliveries_due(now=now)
        .filter(endpoint_id=uuid.UUID(str(endpoint_id)))
        .select_related("event")
        .order_by("id")
        .first()
    )


def deliveries_due_batch(
    *, endpoint_id: uuid.UUID | str, now: datetime, size: int = 50
) -> list[WebhookDelivery]:
    """The endpoint's oldest due deliveries (at most ``size``), oldest first. A caller that
    sees one fail must skip the later ones of the same content."""
    return list(
        deliveries_due(now=now)
        .filter(endpoint_id=uuid.UUID(str(endpoint_id)))
        .select_related("event")
        .order_by("id")[:size]
    )


def endpoints_idle_with_work(*, now: datetime) -> QuerySet[WebhookEndpoint]:
    """Enabled endpoints with due deliveries and no pump working them."""
    return (
        WebhookEndpoint.objects.filter(enabled=True)
        .filter(Q(pump_expires_at__isnull=True) | Q(pump_expires_at__lt=now))
        .filter(Exists(deliveries_due(now=now).filter(endpoint_id=OuterRef("pk"))))
    )


def delivery_next_wake(*, endpoint_id: uuid.UUID | str) -> datetime | None:
    """When the endpoint's next retry is due (None: nothing pending)."""
    return (
        WebhookDelivery.objects.filter(
            endpoint_id=uuid.UUID(str(endpoint_id)), status=DeliveryStatus.PENDING
        )
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
