"""Content (one video and its state) and its renditions."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.content.audit import AuditEvent  # noqa: F401 - the audit trail's model, kept there
from apps.content.status import ContentStatus, ErrorKind
from apps.content.webhooks.models import (  # noqa: F401 - webhooks' models, kept there
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

# The auth group whose members may publish (created by access's migration 0002).
CREATORS_GROUP = "creators"


class Content(models.Model):
    """One video a creator publishes. ``status`` follows the public contract:
    draft -> uploading -> queued -> processing -> ready | failed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contents"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    status = models.CharField(
        max_length=16, choices=ContentStatus.choices, default=ContentStatus.DRAFT
    )
    progress = models.PositiveSmallIntegerField(
        default=0, help_text="0-100: how far the current phase (upload, processing) is."
    )
    overall_progress = models.PositiveSmallIntegerField(
        default=0,
        help_text="0-100 across all phases of the current attempt (apps/content/progress.py); "
        "never lowered within an attempt.",
    )
    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    playable_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="While processing: seconds already watchable (a long video's first chunks).",
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why processing failed, for the creator.")
    error_kind = models.CharField(
        max_length=16,
        choices=ErrorKind.choices,
        blank=True,
        help_text="What kind of failure: whether encoding again can help.",
    )
    gate = models.JSONField(null=True, blank=True, help_text="Who may watch; null means anyone.")
    source_path = models.CharField(
        max_length=500, blank=True, help_text="Storage path of the uploaded original."
    )
    source_size = models.BigIntegerField(null=True, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    source_cid = models.CharField(
        max_length=100,
        blank=True,
        help_text="IPFS CIDv1 of the original (kubo's defaults), computed with its sha256.",
    )
    poster = models.CharField(
        max_length=500, blank=True, help_text="Storage path of the poster image, once encoded."
    )
    published_job = models.ForeignKey(
        "transcode.TranscodeJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The job whose outputs players get; switched in one step when a job finishes.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="content_status_created"),
            models.Index(fields=["owner", "-created_at"], name="content_owner_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="content_progress_0_100"),
            models.CheckConstraint(
                condition=Q(status__in=ContentStatus.values), name="content_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"


class Rendition(models.Model):
    """One rung of the encoded ladder, as players see it."""

    content = models.ForeignKey(Content, on_delete=models.CASCADE, related_name="renditions")
    name = models.CharField(max_length=32, help_text="The rung, e.g. 720p.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bitrate = models.PositiveIntegerField(help_text="Peak video bitrate, bits per second.")
    average_bitrate = models.PositiveIntegerField(
        default=0, help_text="Average video bitrate, bits per second."
    )
    codecs = models.CharField(max_length=100, help_text="RFC 6381 codecs string.")
    playlist = models.CharField(max_length=500, help_text="Storage path of the media playlist.")

    class Meta:
        ordering = ["-height"]
        constraints = [
            models.UniqueConstraint(fields=["content", "name"], name="rendition_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.content_id} {self.name}"


# A task to send, written in the transaction whose commit asks for it (a transactional outbox;
# apps/content/outbox.py). The row commits with the work it announces; sending it to the broker
# deletes it. A row that stays was not sent (the broker was away, or the process died between
# commit and send), and the relay sends it later. The table holds only what is in flight.
class OutboxMessage(models.Model):
    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="apply_async options: time limits, countdown."
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the relay may send it: after a grace that leaves the sender's own attempt alone,
    # then pushed ahead by each relay attempt (a lease, so two relays never send one together).
    send_after = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Sends tried by the relay.")
    # The sender's trace (W3C ``traceparent``) when tracing is on: the task's spans join the
    # request's trace even when the relay sends it later, from another process.
    trace_context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["send_after"], name="outbox_send_after")]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)!r}"


class Caption(models.Model):
    """Captions or subtitles of a content in one language: a WebVTT file in storage, offered to
    players as an HLS subtitle rendition and a DASH text adaptation set."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    content = models.ForeignKey(Content, on_delete=models.CASCADE, related_name="captions")
    language = models.CharField(max_length=35, help_text="BCP 47 tag, e.g. en or pt-BR.")
    label = models.CharField(max_length=100, help_text="What players show in their menu.")
    path = models.CharField(max_length=500, help_text="Storage path of the WebVTT file.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(fields=["content", "language"], name="caption_one_per_language")
        ]

    def __str__(self) -> str:
        return f"{self.content_id} {self.language}"
