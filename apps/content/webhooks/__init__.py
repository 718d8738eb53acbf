"""Signed webhooks (Standard Webhooks): creators' endpoints, events written in the transaction of
the change they announce, and their delivery by the ``webhooks`` Celery queue."""
