"""Access housekeeping (queue "default")."""

import logging

from celery import shared_task

from apps.access.services import signin_records_prune

logger = logging.getLogger(__name__)


@shared_task(name="apps.access.tasks.access_prune")
def access_prune() -> dict[str, int]:
    """Delete used-up sign-in nonces and long-dead tokens. Safe to run twice."""
    removed = signin_records_prune()
    logger.info("sign-in records pruned", extra=removed)
    return removed
