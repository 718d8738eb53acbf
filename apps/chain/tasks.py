"""Chain tasks (queue "chain")."""

import logging

from celery import shared_task
from django.conf import settings
from requests.exceptions import RequestException
from web3.exceptions import Web3RPCError

from apps.chain import indexer, services
from apps.chain.chains import configured_evm_chains
from apps.chain.pinning import PinningError
from apps.content.storage import StorageUnavailable

logger = logging.getLogger(__name__)

TRANSIENT = (RequestException, Web3RPCError, TimeoutError, ConnectionError, StorageUnavailable)


@shared_task(name="apps.chain.tasks.chain_registration_advance")
def chain_registration_advance(registration_id: int) -> str | None:
    """Send, watch, bump or confirm a registration; reschedules itself until it is done.

    A node or network error ends this step, and the same step runs again in 30 s (not as a
    Celery retry on top of a step already scheduled, which would double the chain of steps:
    a step is idempotent and locks its row, but one chain is enough)."""
    try:
        registration = services.registration_advance(registration_id=registration_id)
    except TRANSIENT:
        logger.warning(
            "registration step failed; trying again in 30 s",
            extra={"registration_id": registration_id},
            exc_info=True,
        )
        chain_registration_advance.apply_async((registration_id,), countdown=30)
        return None
    return registration.status if registration else None


@shared_task(
    name="apps.chain.tasks.chain_index", autoretry_for=TRANSIENT, retry_backoff=5, max_retries=3
)
def chain_index(caip2: str) -> dict | None:
    """Index one chain for a bounded time (the next beat goes on)."""
    try:
        report = indexer.index_chain(caip2=caip2, max_seconds=settings.CHAIN_INDEX_BATCH_SECONDS)
    except indexer.IndexerBusy:
        return None
    return report.__dict__


@shared_task(name="apps.chain.tasks.chain_index_all")
def chain_index_all() -> list[str]:
    """Beat: one indexing task per configured EVM chain where we follow something (our
    contracts, or token contracts that gates name)."""
    chains = [
        spec.caip2 for spec in configured_evm_chains() if indexer.follows_anything(spec.caip2)
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


@shared_task(bind=True, name="apps.chain.tasks.chain_pin_advance", max_retries=8)
def chain_pin_advance(self, pin_id: int) -> str | None:
    """Send a pin to the pinning service, or poll its status until pinned or failed; a service
    that stays unreachable fails the pin with the reason."""
    try:
        pin = services.pin_advance(pin_id=pin_id)
    except (PinningError, StorageUnavailable, RequestException) as error:
        if self.request.retries >= self.max_retries:
            services.pin_give_up(pin_id=pin_id, message=f"Pinning failed: {error}")
            return "failed"
        raise self.retry(exc=error, countdown=min(3600, 30 * 2**self.request.retries)) from error
    return pin.status if pin else None
