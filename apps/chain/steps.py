"""One step of a registration on chain, with no row lock held across a network call.

A step claims the registration with a lease (a conditional update: a duplicate delivery of the
task finds it taken and does nothing), asks the node what it needs, and writes what it decided
with updates conditional on the lease's token, so that a run which outlived its lease writes
nothing. A signed transaction is recorded (nonce, hash) in one short transaction before it is
broadcast. services.registration_advance drives a step; this module is its parts.
"""

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from apps.chain.chains import Chain, chain, content_id_bytes32, contract_for, signer, web3_for
from apps.chain.models import Registration, RegistrationStatus
from apps.chain.nonces import nonce_reconcile
from apps.chain.transactions import (
    Fees,
    GasTooExpensive,
    Reverted,
    current_fees,
    estimate_gas,
    next_nonce,
    release_nonce,
    sign,
)
from apps.chain.webhooks import registration_confirmed_announce
from apps.content.services import content_source_cid
from apps.content.storage import StorageUnavailable
from streamgate.celery import enqueue_on_commit_with

logger = logging.getLogger(__name__)

LIVE = (RegistrationStatus.PENDING, RegistrationStatus.WAITING_GAS, RegistrationStatus.SUBMITTED)
# Longer than any step, which makes a handful of node calls with timeouts; only the first
# computation of an old content's CID reads for longer, and it renews the lease as it goes.
LEASE = timedelta(minutes=5)
RENEW_EVERY = 30.0  # seconds between lease renewals during a long read
MAX_REPLACEMENTS = 5  # 1.15^5: fees at most doubled by bumping


class LeaseLost(Exception):
    """Another run took the registration over (this one outlived its lease): stop here."""


def lease_free(now: datetime) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


@dataclass
class Lease:
    registration_id: int
    token: str
    renewed_at: float = field(default_factory=time.monotonic)

    def write(self, **changes: Any) -> None:
        """Record part of the step's outcome, if the registration is still ours."""
        if not Registration.objects.filter(pk=self.registration_id, lease_token=self.token).update(
            updated_at=timezone.now(), **changes
        ):
            raise LeaseLost(f"registration {self.registration_id} was taken over")

    def renew(self) -> None:
        """Keep the lease through a long read (call it often; it writes every RENEW_EVERY s)."""
        if time.monotonic() - self.renewed_at >= RENEW_EVERY:
            self.write(lease_expires_at=timezone.now() + LEASE)
            self.renewed_at = time.monotonic()


def lease_claim(registration_id: int) -> Lease | None:
    """Take the next step of a live registration; None when it is done or another run has it."""
    now = timezone.now()
    token = secrets.token_hex(16)
    claimed = (
        Registration.objects.filter(pk=registration_id, status__in=LIVE)
        .filter(lease_free(now))
        .update(lease_token=token, lease_expires_at=now + LEASE)
    )
    return Lease(registration_id, token) if claimed else None


@dataclass(frozen=True)
class Step:
    """What a step decided: fields to write, the next step's delay (None: no next step), and a
    transaction to broadcast (its nonce and hash are committed already)."""

    changes: dict[str, Any] = field(default_factory=dict)
    delay: float | None = None
    raw: bytes | None = None


def _failure(registration: Registration, message: str) -> Step:
    logger.warning(
        "registration failed", extra={"registration_id": registration.pk, "error": message}
    )
    return Step(changes={"status": RegistrationStatus.FAILED, "error": message})


def step_run(registration: Registration, lease: Lease) -> Step:
    """Send the registration, or watch, replace or confirm its transaction; then broadcast what
    was signed."""
    spec = chain(registration.chain)
    web3 = web3_for(registration.chain)
    if registration.status in (RegistrationStatus.PENDING, RegistrationStatus.WAITING_GAS):
        step = _submit(registration, lease, spec, web3)
    else:
        step = _track(registration, lease, spec, web3)
    if step.raw is not None:
        return _broadcast(registration, web3, step)
    return step


def step_finish(registration: Registration, lease: Lease, step: Step, *, advance: Task) -> None:
    """Write the step's outcome, give the lease back and schedule the next step (the task
    ``advance``, chain_registration_advance: passed in, as tasks.py imports this module)."""
    changes = dict(step.changes)
    if registration.failures:
        changes.setdefault("error", "")  # a step got through: the last failure is history
    due = timezone.now() + timedelta(seconds=step.delay) if step.delay is not None else None
    with transaction.atomic():
        lease.write(**changes, failures=0, step_due_at=due, lease_token="", lease_expires_at=None)
        if changes.get("status") == RegistrationStatus.CONFIRMED:
            registration_confirmed_announce(registration_id=registration.pk)
        if step.delay is not None:
            enqueue_on_commit_with(
                advance,
                (registration.pk,),
                options={"countdown": step.delay},
            )


def step_failed(
    registration: Registration, lease: Lease, error: Exception, *, retry: bool, advance: Task
) -> None:
    """Record a step that failed: try again later with backoff (``retry``; otherwise the reaper
    resumes it) by the task ``advance``, or fail the registration after CHAIN_STEP_MAX_FAILURES
    in a row."""
    failures, cap = registration.failures + 1, settings.CHAIN_STEP_MAX_FAILURES
    reason = _describe(error, registration.chain)
    now = timezone.now()
    delay: int | None = None
    if failures >= cap:
        message = f"Gave up after {failures} failed attempts in a row; the last: {reason}."
        if registration.tx_hash:
            message += (
                f" Transaction {registration.tx_hash} may still be mined: look it up before "
                "registering again."
            )
        else:
            message += " Register again once this is fixed."
        changes: dict[str, Any] = {"status": RegistrationStatus.FAILED, "step_due_at": None}
    elif retry:
        delay = min(1800, 30 * 2 ** (failures - 1))
        message = f"Attempt {failures} of {cap} failed: {reason}; trying again in {delay} s."
        changes = {"step_due_at": now + timedelta(seconds=delay)}
    else:  # the reaper resumes it once it is overdue
        message = f"Attempt {failures} of {cap} failed: {reason}; it will be resumed."
        changes = {"step_due_at": now}
    logger.warning(
        "registration step failed",
        extra={"registration_id": registration.pk, "failures": failures, "error": reason},
    )
    try:
        with transaction.atomic():
            lease.write(
                **changes,
                error=message,
                failures=failures,
                lease_token="",
                lease_expires_at=None,
            )
            if delay is not None:
                enqueue_on_commit_with(
                    advance,
                    (registration.pk,),
                    options={"countdown": delay},
                )
    except LeaseLost:
        logger.warning("registration taken over", extra={"registration_id": registration.pk})


def _describe(error: Exception, caip2: str) -> str:
    """The reason a step failed, for the creator (no stack, no secrets)."""
    if isinstance(error, Web3RPCError):
        return f"the node of {caip2} answered with an error ({str(error)[:200]})"
    if isinstance(error, RequestException | TimeoutError | ConnectionError):
        return f"the node of {caip2} could not be reached ({type(error).__name__})"
    if isinstance(error, StorageUnavailable):
        return f"storage could not be read ({str(error)[:200]})"
    if isinstance(error, SoftTimeLimitExceeded):
        return "the step ran out of time"
    return f"an internal error ({type(error).__name__})"


def _registry_call(registration: Registration, web3: Web3):
    registry = contract_for(web3, "ContentRegistry", registration.contract.address)
    return registry.functions.register(
        content_id_bytes32(registration.content_id),
        Web3.to_checksum_address(registration.creator),
        registration.cid,
        int(registration.price),
        bytes.fromhex(registration.gate_hash.removeprefix("0x")),
    )


def _submit(registration: Registration, lease: Lease, spec: Chain, web3: Web3) -> Step:
    account = signer()
    # Computed at upload finalisation; a content finalised before that gets it once, here.
    registration.cid = registration.cid or content_source_cid(
        content=registration.content, on_progress=lease.renew
    )
    if not registration.creator:  # requested before creators' wallets were recorded
        return _failure(
            registration,
            "No creator wallet was recorded for this registration; register again (with an "
            "Ethereum wallet linked to your account).",
        )
    lease.write(cid=registration.cid)
    try:
        fees = current_fees(web3, spec)
    except GasTooExpensive as error:
        return Step(
            changes={"status": RegistrationStatus.WAITING_GAS, "error": str(error)}, delay=300
        )
    call = _registry_call(registration, web3)
    try:
        gas = estimate_gas(call, account.address, contract_names=("ContentRegistry",))
    except Reverted as error:
        return _failure(registration, f"The registry refused the registration: {error}.")
    shortfall = gas * fees.max_fee - web3.eth.get_balance(account.address)
    if shortfall > 0:
        return _failure(
            registration,
            f"The signer {account.address} lacks {shortfall / 10**18:.6f} of the "
            "native coin to pay for gas; fund it and register again.",
        )
    pending = nonce_reconcile(web3=web3, chain=spec, account=account)
    with transaction.atomic():  # short: the nonce row is locked for these few writes only
        nonce = next_nonce(chain=spec, address=account.address, node_pending=pending)
        raw = sign(call, account=account, nonce=nonce, gas=gas, fees=fees, chain_id=spec.chain_id)
        lease.write(
            status=RegistrationStatus.SUBMITTED,
            sender=account.address,
            nonce=nonce,
            tx_hash=Web3.keccak(raw).to_0x_hex(),
            max_fee_per_gas=fees.max_fee,
            max_priority_fee_per_gas=fees.priority_fee,
            submitted_at=timezone.now(),
            attempts=registration.attempts + 1,
            error="",
        )
    registration.sender, registration.nonce = account.address, nonce
    return Step(delay=2, raw=raw)


def _broadcast(registration: Registration, web3: Web3, step: Step) -> Step:
    """Send a committed transaction. If the node is unreachable, tracking sends it again once
    it counts as stuck; if the signer cannot pay, the registration fails and frees its nonce;
    if the node expects a lower nonce, the gap below it is filled and it is sent again."""
    try:
        try:
            web3.eth.send_raw_transaction(step.raw)
        except (Web3RPCError, ValueError) as error:
            if "nonce too high" not in str(error).lower():
                raise
            spec = chain(registration.chain)
            nonce_reconcile(web3=web3, chain=spec, account=signer(), refused=True)
            web3.eth.send_raw_transaction(step.raw)
    except (Web3RPCError, ValueError) as error:
        text = str(error).lower()
        if "insufficient funds" in text:
            release_nonce(registration.chain, registration.sender, registration.nonce)
            return _failure(
                registration,
                f"The signer {registration.sender} cannot pay for gas; fund it and register again.",
            )
        if "already known" not in text and "nonce too low" not in text:
            logger.warning(
                "broadcast failed; tracking will resend",
                extra={"registration_id": registration.pk, "error": str(error)[:200]},
            )
    except (RequestException, TimeoutError, ConnectionError):
        logger.warning(
            "broadcast failed; tracking will resend",
            extra={"registration_id": registration.pk},
            exc_info=True,
        )
    else:
        logger.info("registration sent", extra={"registration_id": registration.pk})
    return Step(changes=step.changes, delay=step.delay)


def _receipt(web3: Web3, registration: Registration):
    for tx_hash in [registration.tx_hash, *registration.replaced_tx_hashes]:
        try:
            return web3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            continue  # not mined (yet), or replaced by one of the others
    return None


def _track(registration: Registration, lease: Lease, spec: Chain, web3: Web3) -> Step:
    receipt = _receipt(web3, registration)
    if receipt is None:
        return _unmined(registration, lease, spec, web3)
    if receipt["status"] != 1:
        return _failure(
            registration, f"The transaction {receipt['transactionHash'].to_0x_hex()} reverted."
        )
    head = web3.eth.block_number
    if head - receipt["blockNumber"] < spec.confirmations:
        return Step(delay=5)
    if web3.eth.get_block(receipt["blockNumber"])["hash"] != receipt["blockHash"]:
        return Step(delay=5)  # reorganised away: pending again, keep watching
    logger.info("registration confirmed", extra={"registration_id": registration.pk})
    return Step(
        changes={
            "status": RegistrationStatus.CONFIRMED,
            "tx_hash": receipt["transactionHash"].to_0x_hex(),
            "block_number": receipt["blockNumber"],
            "block_hash": receipt["blockHash"].to_0x_hex(),
            "confirmed_at": timezone.now(),
        }
    )


def _unmined(registration: Registration, lease: Lease, spec: Chain, web3: Web3) -> Step:
    nonce_used = web3.eth.get_transaction_count(registration.sender, "latest") > registration.nonce
    # The nonce is used, but by none of our transactions (receipts looked up again: no race).
    if nonce_used and _receipt(web3, registration) is None:
        return _failure(
            registration,
            f"The transaction was dropped: nonce {registration.nonce} was "
            "used by another transaction of the signer.",
        )
    waited = timezone.now() - registration.submitted_at
    if waited < timedelta(seconds=settings.CHAIN_STUCK_AFTER_SECONDS):
        return Step(delay=5)
    if len(registration.replaced_tx_hashes) >= MAX_REPLACEMENTS:
        return Step(delay=60)  # fees doubled already: wait for the network
    try:
        fresh = current_fees(web3, spec)
    except GasTooExpensive:
        return Step(delay=60)
    old = Fees(
        base_fee=0,
        max_fee=int(registration.max_fee_per_gas or 0),
        priority_fee=int(registration.max_priority_fee_per_gas or 0),
    )
    bumped = old.bumped(settings.CHAIN_FEE_BUMP_PERCENT)
    fees = Fees(
        base_fee=fresh.base_fee,
        max_fee=max(bumped.max_fee, fresh.max_fee),
        priority_fee=max(bumped.priority_fee, fresh.priority_fee),
    )
    account = signer()
    call = _registry_call(registration, web3)
    try:
        gas = estimate_gas(call, account.address, contract_names=("ContentRegistry",))
    except Reverted:  # mined meanwhile, or refused now: the next look tells
        return Step(delay=5)
    raw = sign(
        call, account=account, nonce=registration.nonce, gas=gas, fees=fees, chain_id=spec.chain_id
    )
    lease.write(  # the replacement's hash is committed before it is broadcast
        tx_hash=Web3.keccak(raw).to_0x_hex(),
        replaced_tx_hashes=[registration.tx_hash, *registration.replaced_tx_hashes],
        max_fee_per_gas=fees.max_fee,
        max_priority_fee_per_gas=fees.priority_fee,
        submitted_at=timezone.now(),
        attempts=registration.attempts + 1,
    )
    logger.info("registration fees bumped", extra={"registration_id": registration.pk})
    return Step(delay=5, raw=raw)
