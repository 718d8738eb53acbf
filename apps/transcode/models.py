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
    chunk_plan = models.JSONField(
        default=dict, blank=True, help_text="A chunked job: what every chunk encodes with."
    )
    chunks_published = models.PositiveIntegerField(
        default=0, help_text="How many chunks, from the first, the manifests list."
    )
    playable_seconds = models.FloatField(
        null=True, blank=True, help_text="Seconds watchable while the job still runs."
    )
    playable_at = models.DateTimeField(
        null=True, blank=True, help_text="When its first chunks became watchable."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat")]
        constraints = [
            models.UniqueConstraint(fields=["content", "attempt"], name="job_unique_attempt"),
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.content_id} #{self.attempt} ({self.state})"


class ChunkKind(models.TextChoices):
    VIDEO = "video", "Video (every rung)"
    AUDIO = "audio", "Audio (whole)"


class ChunkState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"


class TranscodeChunk(models.Model):
    """A part of a chunked job: the video frames of one range in every rung, or the whole audio.
    Its own task on the transcode queue; retried on its own. ``record`` lists what it wrote."""

    job = models.ForeignKey(TranscodeJob, on_delete=models.CASCADE, related_name="chunks")
    kind = models.CharField(max_length=8, choices=ChunkKind.choices)
    index = models.PositiveIntegerField()
    start_frame = models.PositiveIntegerField(default=0)
    frames = models.PositiveIntegerField(null=True, blank=True, help_text="None: to the end.")
    start_seconds = models.FloatField(default=0)
    seconds = models.FloatField(help_text="How much of the video it covers (planned).")
    state = models.CharField(max_length=16, choices=ChunkState.choices, default=ChunkState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started.")
    progress = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid running it.")
    task_id = models.CharField(max_length=64, blank=True)
    interruption = models.CharField(max_length=300, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    encode_seconds = models.FloatField(null=True, blank=True, help_text="FFmpeg's wall time.")
    record = models.JSONField(default=dict, blank=True, help_text="The segments it wrote.")

    class Meta:
        ordering = ["job", "kind", "index"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="chunk_state_heartbeat")]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "index"], name="chunk_unique_index"),
            models.CheckConstraint(
                condition=Q(state__in=ChunkState.values), name="chunk_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind} {self.index} ({self.state})"


class DeliveryEncryption(models.Model):
    """A published job's media, encrypted: public files under ``public_prefix`` (HLS AES-128
    under ``hls/``, DASH Common Encryption under ``dash/``), and the keys that open them,
    wrapped by the master key ``master_key_id`` (apps/transcode/keys.py). Only the key URL is
    gated (apps/access/content_keys.py)."""

    job = models.OneToOneField(
        TranscodeJob, primary_key=True, on_delete=models.CASCADE, related_name="encryption"
    )
    public_prefix = models.CharField(max_length=300)
    hls_kid = models.UUIDField()
    hls_key = models.BinaryField()
    cenc_kid = models.UUIDField()
    cenc_key = models.BinaryField()
    master_key_id = models.CharField(max_length=32)
    counts = models.JSONField(
        default=dict, blank=True, help_text="Segments encrypted per playlist and track so far."
    )
    complete = models.BooleanField(
        default=False, help_text="Every segment encrypted and the public playlists written."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.job_id} ({self.master_key_id})"
