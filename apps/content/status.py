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
