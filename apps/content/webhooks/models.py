"""Webhook endpoints, the events written for them and one delivery per event and endpoint.

An event is written in the transaction of the change it announces (never sent for a write that
rolled back, never lost for one that committed); its deliveries are worked by one "pump" task
per endpoint at a time (apps/content/webhooks/pump.py), which holds a lease on the endpoint row.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class WebhookEndpoint(models.Model):
    """A URL a creator wants told about their contents' events, signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The event types it receives.")
    # Symmetric (HMAC) keys: they sign every delivery, so they are kept, not hashed. The
    # previous one keeps signing beside the new one until previous_secret_expires_at.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success."
    )
    # The pump working this endpoint's deliveries holds this lease (a conditional update).
    pump_token = models.CharField(max_length=32, blank=True)
    pump_expires_at = models.DateTimeField(null=True, blank=True)
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text="When a delayed pump is already queued to run."
    )
    pump_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When an event last queued a pump not yet started."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["owner", "created_at"], name="webhook_endpoint_owner")]

    def __str__(self) -> str:
        return f"{self.url} ({self.owner_id})"


class WebhookEvent(models.Model):
    """One event as sent: ``body`` is the exact JSON signed and posted on every attempt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_events"
    )
    # No foreign key: content.deleted outlives its content, and the log keeps its id.
    content_id = models.UUIDField(null=True, blank=True)
    body = models.TextField()
    # Announcements that can be seen twice (an indexer replay, two confirmations of one
    # registration) carry a key; the second is not written.
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @property
    def message_id(self) -> str:
        """The ``webhook-id`` header: the same on every attempt and redelivery."""
        return f"msg_{self.id.hex}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """An event on its way to one endpoint, with what its last attempt saw."""

    id = models.BigAutoField(primary_key=True)  # increasing: the order of a content's events
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    content_id = models.UUIDField(null=True, blank=True)  # the event's, for the ordering rule
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The first 1 KB of the answer.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["endpoint", "next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "content_id", "id"], name="webhook_delivery_order"),
            models.Index(fields=["finished_at"], name="webhook_delivery_finished"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="webhook_delivery_status"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"
