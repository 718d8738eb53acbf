"""A transcode job: one attempt at turning a content's source into its published renditions."""

import uuid

from django.db import models
from django.db.models import Q


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobStage(models.TextChoices):
    PROBE = "probe", "Probe"
    ENCODE = "encode", "Encode"
    PACKAGE = "package", "Package"
    PUBLISH = "publish", "Publish"


FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class TranscodeJob(models.Model):
    """Outputs go to ``renditions/<content>/<job>/`` and are published only when complete."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    content = models.ForeignKey(
        "content.Content", on_delete=models.CASCADE, related_name="transcode_jobs"
    )
    attempt = models.PositiveSmallIntegerField()
    restart = models.BooleanField(
        default=False, help_text="Started because the previous attempt's worker died."
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    stage = models.CharField(max_length=16, choices=JobStage.choices, blank=True)
    stage_seconds = models.JSONField(default=dict, blank=True, help_text="Wall time per stage.")
    source_info = models.JSONField(default=dict, blank=True, help_text="What probing found.")
    ladder = models.JSONField(default=list, blank=True, help_text="The rungs encoded.")
    command = models.TextField(blank=True, help_text="The FFmpeg command line, runnable by hand.")
    exit_code = models.IntegerField(null=True, blank=True)
    stderr_tail = models.TextField(blank=True, help_text="The end of FFmpeg's log, for staff.")
    error = models.TextField(blank=True, help_text="Why it failed, for the creator.")
    output_prefix = models.CharField(max_length=500)
    realtime_factor = models.FloatField(
        null=True, blank=True, help_text="Seconds of video encoded per second of work."
    )
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid running it.")
    task_id = models.CharField(max_length=64, blank=True, help_text="The Celery task running it.")
    task_retries = models.PositiveSmallIntegerField(
        default=0, help_text="Which retry of that task claimed it (a later one may take it back)."
    )
    interruption = models.CharField(
        max_length=300, blank=True, help_text="What last interrupted it, and what became of it."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat")]
        constraints = [
            models.UniqueConstraint(fields=["content", "attempt"], name="job_unique_attempt"),
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.content_id} #{self.attempt} ({self.state})"
