"""Chain tasks (queue "chain")."""

import logging

from celery import shared_task
from django.conf import settings
from requests.exceptions import RequestException

from apps.chain import checkpoint, indexer, log_reader, services
from apps.chain.chains import configured_evm_chains
from apps.chain.pinning import PinningError
from apps.chain.transient import TRANSIENT
from apps.content.storage import StorageUnavailable

logger = logging.getLogger(__name__)

# A step makes a few node calls; only the first CID of a content finalised before CIDs were
# stored reads its whole original (renewing its lease as it goes), hence the long limits.
STEP_LIMITS = {"soft_time_limit": 3600, "time_limit": 3660}


@shared_task(name="apps.chain.tasks.chain_registration_advance", **STEP_LIMITS)
def chain_registration_advance(registration_id: int) -> str | None:
    """Send, watch, bump or confirm a registration; the service schedules the next step, tries
    a failed one again with backoff and fails the registration after CHAIN_STEP_MAX_FAILURES."""
    registration = services.registration_advance(registration_id=registration_id)
    return registration.status if registration else None


@shared_task(name="apps.chain.tasks.chain_reap")
def chain_reap() -> dict[str, int]:
    """Beat: resume registrations and pins that stopped moving, or fail them after the cap."""
    return services.chain_reap()


@shared_task(
    name="apps.chain.tasks.chain_index", autoretry_for=TRANSIENT, retry_backoff=5, max_retries=3
)
def chain_index(caip2: str) -> dict | None:
    """Index one chain for a bounded time (the next beat goes on)."""
    try:
        report = indexer.index_chain(caip2=caip2, max_seconds=settings.CHAIN_INDEX_BATCH_SECONDS)
    except checkpoint.IndexerBusy:
        return None
    return report.__dict__


@shared_task(name="apps.chain.tasks.chain_index_all")
def chain_index_all() -> list[str]:
    """Beat: one indexing task per configured EVM chain where we follow something (our
    contracts, or token contracts that gates name)."""
    chains = [
        spec.caip2 for spec in configured_evm_chains() if log_reader.follows_anything(spec.caip2)
    ]
    for caip2 in chains:
        chain_index.delay(caip2)
    return chains


@shared_task(name="apps.chain.tasks.chain_gas_sample_all")
def chain_gas_sample_all() -> int:
    """Beat: record base fee and tip of every configured EVM chain."""
    sampled = 0
    for spec in configured_evm_chains():
        try:
            services.gas_sample(caip2=spec.caip2)
            sampled += 1
        except TRANSIENT:
            logger.warning("gas sample failed", extra={"chain": spec.caip2}, exc_info=True)
    return sampled


@shared_task(bind=True, name="apps.chain.tasks.chain_pin_advance", max_retries=8, **STEP_LIMITS)
def chain_pin_advance(self, pin_id: int) -> str | None:
    """Send a pin to the pinning service, or poll its status until pinned or failed; a service
    that stays unreachable fails the pin with the reason."""
    try:
        pin = services.pin_advance(pin_id=pin_id)
    except (PinningError, StorageUnavailable, RequestException) as error:
        if self.request.retries >= self.max_retries:
            services.pin_give_up(pin_id=pin_id, message=f"Pinning failed: {error}")
            return "failed"
        countdown = min(3600, 30 * 2**self.request.retries)
        services.pin_postpone(pin_id=pin_id, seconds=countdown)
        raise self.retry(exc=error, countdown=countdown) from error
    return pin.status if pin else None


@shared_task(
    name="apps.chain.tasks.chain_offers_relay",
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=6,
    soft_time_limit=120,
    time_limit=150,
)
def chain_offers_relay(offer_set_id: int) -> str | None:
    """Send a creator-signed set of offers to the registry with StreamGate's signer."""
    from apps.chain.offers import offer_set_relay

    offer_set = offer_set_relay(offer_set_id=offer_set_id)
    return offer_set.status if offer_set else None


@shared_task(
    bind=True,
    name="apps.chain.tasks.chain_offers_track",
    max_retries=900,
    soft_time_limit=60,
    time_limit=90,
)
def chain_offers_track(self, offer_set_id: int) -> bool:
    """Watch a relayed set's transaction until it is live (confirmed) or failed."""
    from apps.chain.offers import offer_set_track

    try:
        done = offer_set_track(offer_set_id=offer_set_id)
    except TRANSIENT as error:
        raise self.retry(exc=error, countdown=5) from error
    if not done:
        raise self.retry(countdown=2)
    return True


@shared_task(
    name="apps.chain.tasks.chain_payout_relay",
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=6,
    soft_time_limit=120,
    time_limit=150,
)
def chain_payout_relay(change_id: int) -> str | None:
    """Send a creator-signed payout address to the registry with StreamGate's signer."""
    from apps.chain.payouts import payout_relay

    change = payout_relay(change_id=change_id)
    return change.status if change else None


@shared_task(
    bind=True,
    name="apps.chain.tasks.chain_payout_track",
    max_retries=900,
    soft_time_limit=60,
    time_limit=90,
)
def chain_payout_track(self, change_id: int) -> bool:
    """Watch a relayed payout change until it is live (confirmed) or failed."""
    from apps.chain.payouts import payout_track

    try:
        done = payout_track(change_id=change_id)
    except TRANSIENT as error:
        raise self.retry(exc=error, countdown=5) from error
    if not done:
        raise self.retry(countdown=2)
    return True
