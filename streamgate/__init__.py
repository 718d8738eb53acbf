"""StreamGate: token-gated video. Importing the package loads the Celery app for shared_task."""

from streamgate.celery import app as celery_app

__all__ = ("celery_app",)
