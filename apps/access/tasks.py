"""Access housekeeping (queue "default")."""

import logging

from celery import shared_task

from apps.access.audience import viewer_windows_prune
from apps.access.audience_stats import view_stats_rollup
from apps.access.services import signin_records_prune

logger = logging.getLogger(__name__)


@shared_task(name="apps.access.tasks.access_prune")
def access_prune() -> dict[str, int]:
    """Delete used-up sign-in nonces, long-dead tokens and viewer windows that have run out.
    Safe to run twice."""
    removed = {**signin_records_prune(), "viewer_windows": viewer_windows_prune()}
    logger.info("sign-in records pruned", extra=removed)
    return removed


@shared_task(name="apps.access.tasks.views_rollup", acks_late=True, soft_time_limit=50)
def views_rollup() -> dict[str, int]:
    """Roll the beacons' raw rows into each content's stats (beat, every VIEW_ROLLUP_SECONDS).
    Safe to run twice: it recomputes from the raw rows."""
    done = view_stats_rollup()
    if done["contents"]:
        logger.info("views rolled up", extra=done)
    return done
