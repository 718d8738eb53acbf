"""Outbox tasks (queue "default")."""

from celery import shared_task

from apps.outbox.services import outbox_relay as relay


@shared_task(name="apps.outbox.tasks.outbox_relay", ignore_result=True)
def outbox_relay() -> dict[str, int]:
    """Beat: send the tasks that committed while the broker was away."""
    return relay()
