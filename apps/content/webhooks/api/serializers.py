"""Webhook API shapes; input and output kept apart. The signing secret is output only by
creation and rotation."""

from rest_framework import serializers

from apps.content.webhooks.events import EVENT_TYPES
from apps.content.webhooks.models import WebhookDelivery, WebhookEndpoint

EVENTS_HELP = "Event types to receive: " + ", ".join(EVENT_TYPES) + "."


class EndpointCreateInputSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000, trim_whitespace=True, help_text="http(s) URL of your receiver."
    )
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, help_text=EVENTS_HELP
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class EndpointUpdateInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, required=False
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(
        required=False, help_text="false pauses deliveries; true re-enables a disabled endpoint."
    )


class EndpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "failing_since",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]


class EndpointCreatedOutputSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (whsec_...), shown only in this answer."
    )

    class Meta(EndpointOutputSerializer.Meta):
        fields = [*EndpointOutputSerializer.Meta.fields, "secret"]


class SecretOutputSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret, shown only in this answer.")
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="Until then the previous secret signs too (a second signature)."
    )


class DeliveryOutputSerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.message_id", help_text="The webhook-id.")
    event_type = serializers.CharField(source="event.type")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "content_id",
            "status",
            "attempts",
            "last_attempt_at",
            "last_status_code",
            "last_latency_ms",
            "last_response",
            "last_error",
            "next_attempt_at",
            "created_at",
            "finished_at",
        ]
