"""A tus upload: where its bytes are, how many have arrived, who may write next."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class UploadState(models.TextChoices):
    RECEIVING = "receiving", "Receiving"
    COMPLETE = "complete", "All bytes received"
    FINALIZING = "finalizing", "Finalizing"
    FINALIZED = "finalized", "Finalized"
    FAILED = "failed", "Failed"
    TERMINATED = "terminated", "Terminated"
    EXPIRED = "expired", "Expired"


class UploadBackend(models.TextChoices):
    DISK = "disk", "Local disk"
    S3 = "s3", "S3 multipart"


# States in which the upload's bytes still exist somewhere and count against the quota.
LIVE_STATES = (UploadState.RECEIVING, UploadState.COMPLETE, UploadState.FINALIZING)
# States whose incoming bytes must go; ``discarded_at`` records that they went.
DEAD_STATES = (UploadState.TERMINATED, UploadState.EXPIRED, UploadState.FAILED)


class Upload(models.Model):
    """One tus upload resource (``/api/v1/uploads/<id>``) feeding one Content's source."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    # SET_NULL: a content deleted mid-upload leaves an orphan that the reaper discards.
    content = models.ForeignKey(
        "content.Content", null=True, on_delete=models.SET_NULL, related_name="uploads"
    )
    state = models.CharField(
        max_length=16, choices=UploadState.choices, default=UploadState.RECEIVING
    )
    backend = models.CharField(max_length=8, choices=UploadBackend.choices)
    length = models.BigIntegerField(help_text="Upload-Length: the whole file, in bytes.")
    offset = models.BigIntegerField(default=0, help_text="Bytes received and stored for good.")
    filename = models.CharField(max_length=200, help_text="Sanitised original file name.")
    metadata = models.JSONField(default=dict, blank=True, help_text="Decoded Upload-Metadata.")
    metadata_header = models.TextField(blank=True, help_text="Upload-Metadata as sent.")
    source_path = models.CharField(
        max_length=500, help_text="Storage path the assembled file gets: sources/<content>/…"
    )
    # S3 multipart state: the parts uploaded so far and the bytes of an unfinished part, which
    # wait in a separate object (``<incoming>.tail``) so that any web process can go on.
    s3_upload_id = models.CharField(max_length=1024, blank=True)
    s3_parts = models.JSONField(default=list, blank=True)
    part_size = models.PositiveIntegerField(default=0)
    tail_size = models.BigIntegerField(default=0)
    # The writer's lease: a PATCH holds it while it streams; a crashed writer's lease runs out.
    lock_token = models.CharField(max_length=32, blank=True)
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    progress_sent_at = models.DateTimeField(null=True, blank=True)
    # Finalisation is claimed like the write lease: one task at a time (its token is the Celery
    # task id, so the task's own retry takes it back), renewed while it reads; a claim not
    # renewed for FINALIZE_LEASE lost its worker and is taken over.
    finalize_token = models.CharField(max_length=64, blank=True)
    finalize_renewed_at = models.DateTimeField(null=True, blank=True)
    # Set once the bytes of a terminated, expired or failed upload are deleted from storage.
    discarded_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="upload_state_expires"),
            models.Index(fields=["owner", "state"], name="upload_owner_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(offset__gte=0) & Q(offset__lte=F("length")),
                name="upload_offset_within_length",
            ),
            models.CheckConstraint(
                condition=Q(state__in=UploadState.values), name="upload_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} {self.offset}/{self.length} ({self.state})"

    @property
    def is_complete(self) -> bool:
        return self.offset == self.length

    @property
    def incoming_path(self) -> str:
        """Storage path where bytes gather before assembly (disk) or the tail waits (S3)."""
        return f"incoming/{self.id}"
