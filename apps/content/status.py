"""A content's status (README, "Contract: statuses"): its own module, so that the QuerySets in
cache.py, which models.py imports, can name it too."""

from django.db import models


class ContentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    UPLOADING = "uploading", "Uploading"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ErrorKind(models.TextChoices):
    """Why a content failed, which decides what the creator is offered: ``source`` (the file
    itself cannot be used: not a video, unusable, lost) needs a new file; ``processing`` (an
    encoder failure, a time limit, a dependency away) may succeed when retried."""

    SOURCE = "source", "The file cannot be used"
    PROCESSING = "processing", "Processing failed"
