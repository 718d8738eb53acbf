"""Webhook tasks (queue "webhooks": streamgate/celery.py routes apps.content.webhooks.*).

The bodies import their services when they run: the services queue these tasks.
"""

from celery import shared_task

from streamgate.celery import RETRY_TRANSIENT


@shared_task(
    name="apps.content.webhooks.tasks.webhook_endpoint_pump",
    ignore_result=True,
    soft_time_limit=300,
    **RETRY_TRANSIENT,
)
def webhook_endpoint_pump(endpoint_id: str) -> int:
    """Send an endpoint's due deliveries (nothing if another pump is at it)."""
    from apps.content.webhooks.pump import pump_run

    return pump_run(endpoint_id=endpoint_id)


@shared_task(name="apps.content.webhooks.tasks.webhooks_dispatch", ignore_result=True)
def webhooks_dispatch() -> int:
    """Beat: queue pumps for due deliveries nobody works (later retries, lost tasks)."""
    from apps.content.webhooks.pump import pumps_dispatch

    return pumps_dispatch()


@shared_task(name="apps.content.webhooks.tasks.webhooks_purge", ignore_result=True)
def webhooks_purge() -> int:
    """Beat: delete deliveries finished more than WEBHOOK_RETENTION_DAYS ago."""
    from apps.content.webhooks.services import deliveries_purge

    return deliveries_purge()
