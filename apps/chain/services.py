"""Every write of the chain app except the indexer's (indexer.py, with checkpoint.py,
log_reader.py and reorgs.py): deploying contracts, registering contents on chain (one step at a
time: steps.py), gas samples, IPFS pins, and the reaper of registrations and pins that stopped
moving."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from web3 import Web3
from web3.exceptions import TimeExhausted, Web3RPCError
from web3.types import TxReceipt

from apps.chain import tasks
from apps.chain.accounts import user_addresses
from apps.chain.chains import (
    Chain,
    ChainNotConfigured,
    SignerMissing,
    artifact,
    chain,
    content_id_bytes32,  # noqa: F401 - the registry's id of a content
    signer,
    web3_for,
)
from apps.chain.gate_digest import gate_hash
from apps.chain.models import (
    ChainContract,
    ContractKind,
    GasSample,
    Pin,
    PinStatus,
    Registration,
    RegistrationStatus,
)
from apps.chain.nonces import nonce_reconcile, nonce_refused
from apps.chain.pinning import PinningError, PinningService
from apps.chain.steps import (
    LIVE,
    LeaseLost,
    Step,
    lease_claim,
    lease_free,
    step_failed,
    step_finish,
    step_run,
)
from apps.chain.transactions import (
    current_fees,
    estimate_gas,
    next_nonce,
    release_nonce,
    sign,
)
from apps.chain.transient import TRANSIENT
from apps.content.cid import same_content
from apps.content.exceptions import SourceMissing
from apps.content.models import Content, ContentStatus
from apps.content.services import content_source_cid
from streamgate.celery import enqueue_on_commit, enqueue_on_commit_with
from streamgate.exceptions import Conflict, DomainError, NotFound

logger = logging.getLogger(__name__)

ARTIFACT_OF = {
    ContractKind.REGISTRY: "ContentRegistry",
    ContractKind.NFT721: "TestNFT721",
    ContractKind.NFT1155: "TestNFT1155",
    ContractKind.TOKEN: "TestToken",
}
RECEIPT_TIMEOUT = 120


# --- deploying --------------------------------------------------------------------------------


def _send_and_wait(web3: Web3, call, *, spec: Chain, names: tuple[str, ...]) -> TxReceipt:
    if spec.chain_id is None:
        raise DomainError(f"{spec.name} is not an EVM chain; our contracts deploy to eip155 ones.")
    account = signer()
    fees = current_fees(web3, spec)
    gas = estimate_gas(call, account.address, contract_names=names)
    refused = False
    while True:  # once more after a refusal for the nonce, with the row healed
        pending = nonce_reconcile(web3=web3, chain=spec, account=account, refused=refused)
        with transaction.atomic():
            nonce = next_nonce(chain=spec, address=account.address, node_pending=pending)
            raw = sign(
                call, account=account, nonce=nonce, gas=gas, fees=fees, chain_id=spec.chain_id
            )
        try:
            tx_hash = web3.eth.send_raw_transaction(raw)
            break
        except (Web3RPCError, ValueError) as error:
            release_nonce(spec.caip2, account.address, nonce)
            if nonce_refused(error) and not refused:
                refused = True
                continue
            raise DomainError(f"The node refused the transaction: {error}") from error
    try:
        return web3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    except TimeExhausted as error:
        raise DomainError(
            f"Transaction {tx_hash.to_0x_hex()} was not mined within {RECEIPT_TIMEOUT} s; look it "
            "up and record the contract address by hand once it is."
        ) from error


def contract_deploy(*, caip2: str, kind: ContractKind, args: tuple = ()) -> ChainContract:
    """Deploy one of our contracts with the signer and record its address."""
    spec = chain(caip2)
    web3 = web3_for(caip2)
    compiled = artifact(ARTIFACT_OF[kind])
    factory = web3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    receipt = _send_and_wait(
        web3, factory.constructor(*args), spec=spec, names=(ARTIFACT_OF[kind],)
    )
    address = receipt["contractAddress"]  # None only for a receipt that created no contract
    if receipt["status"] != 1 or address is None:
        raise DomainError(f"Deploying {compiled['contractName']} on {caip2} failed.")
    # An address comes back only on a chain that was reset (a local one): the new contract
    # takes the old record's place.
    record, _ = ChainContract.objects.update_or_create(
        chain=caip2,
        address=Web3.to_checksum_address(address),
        defaults={
            "kind": kind,
            "deployed_block": receipt["blockNumber"],
            "deploy_tx": receipt["transactionHash"].to_0x_hex(),
        },
    )
    logger.info(
        "contract deployed", extra={"chain": caip2, "kind": kind, "address": record.address}
    )
    return record


def registry_for(caip2: str) -> ChainContract:
    found = ChainContract.objects.filter(chain=caip2, kind=ContractKind.REGISTRY).first()
    if found is None:
        raise NotFound(
            f"No ContentRegistry is deployed on {caip2}; run deploy_contracts --chain {caip2}.",
            reason="no_registry",
        )
    return found


# --- registering ------------------------------------------------------------------------------


@transaction.atomic
def registration_request(*, content: Content, caip2: str, price: int = 0) -> Registration:
    """Queue the registration of a ready content on ``caip2``'s registry. After a failed one,
    this is how it is tried again."""
    chain(caip2)  # an unknown chain is an error here, not in the task
    if content.status != ContentStatus.READY:
        raise Conflict("Only ready content can be registered on chain.", reason="not_ready")
    if price < 0:
        raise DomainError("The price cannot be negative.", reason="price")
    contract = registry_for(caip2)
    # The registry records the creator's own wallet, not StreamGate's signer: only that wallet
    # can then sign the content's offers and payout address.
    wallets = user_addresses(content.owner, caip2)
    if not wallets:
        raise Conflict(
            f"Link an Ethereum wallet to your account first: the registry on {caip2} records it "
            "as the creator, and only it can sign the content's offers and payout address.",
            reason="no_wallet",
        )
    live = (
        Registration.objects.select_for_update()
        .filter(content=content, chain=caip2)
        .exclude(status=RegistrationStatus.FAILED)
        .first()
    )
    if live:
        raise Conflict(f"This content is already {live.status} on {caip2}.", reason="registered")
    registration = Registration.objects.create(
        content=content,
        chain=caip2,
        contract=contract,
        price=Decimal(price),
        gate_hash=gate_hash(content.gate),
        creator=wallets[0],
        step_due_at=timezone.now(),
    )
    enqueue_on_commit(tasks.chain_registration_advance, registration.pk)
    return registration


def registration_retry(*, registration: Registration) -> Registration:
    """Register a failed registration's content again on the same chain at the same price (a
    new registration; the failed one stays as the record of what went wrong)."""
    if registration.status != RegistrationStatus.FAILED:
        raise Conflict(
            f"Only a failed registration can be retried; this one is {registration.status}.",
            reason="not_failed",
        )
    return registration_request(
        content=registration.content, caip2=registration.chain, price=int(registration.price)
    )


def registration_advance(*, registration_id: int) -> Registration | None:
    """Move a registration one step: send it, watch it, replace it if stuck, confirm it, and
    schedule the next step. A step that fails is tried again with backoff; after
    CHAIN_STEP_MAX_FAILURES failures in a row the registration fails with the reason.

    No row lock is held while the node is asked anything: the step holds a lease (a duplicate
    delivery of the task finds it taken and does nothing) and writes only while the lease is its
    own; a signed transaction is broadcast only after its nonce and hash are committed.
    """
    lease = lease_claim(registration_id)
    if lease is None:  # done, or another run is at it
        return Registration.objects.filter(pk=registration_id).first()
    registration = Registration.objects.select_related("content", "contract").get(
        pk=registration_id
    )
    try:
        step = step_run(registration, lease)
    except LeaseLost:
        logger.warning("registration taken over", extra={"registration_id": registration_id})
        return Registration.objects.filter(pk=registration_id).first()
    except (SignerMissing, ChainNotConfigured, SourceMissing) as error:  # no retry mends these
        step = Step(changes={"status": RegistrationStatus.FAILED, "error": str(error)})
    except TRANSIENT as error:
        step_failed(
            registration, lease, error, retry=True, advance=tasks.chain_registration_advance
        )
        return Registration.objects.filter(pk=registration_id).first()
    except Exception as error:  # a time limit, a bug: counted, resumed by the reaper, and raised
        step_failed(
            registration, lease, error, retry=False, advance=tasks.chain_registration_advance
        )
        raise
    try:
        step_finish(registration, lease, step, advance=tasks.chain_registration_advance)
    except LeaseLost:
        logger.warning("registration taken over", extra={"registration_id": registration_id})
    return Registration.objects.filter(pk=registration_id).first()


# --- gas ----------------------------------------------------------------------------------------


def gas_sample(*, caip2: str) -> GasSample:
    """Record the chain's current base fee and suggested tip."""
    web3 = web3_for(caip2)
    block = web3.eth.get_block("latest")
    try:
        tip = int(web3.eth.max_priority_fee)
    except Exception:  # noqa: BLE001 - not every node implements eth_maxPriorityFeePerGas
        tip = 0
    return GasSample.objects.create(
        chain=caip2,
        block_number=block["number"],
        base_fee_per_gas=int(block.get("baseFeePerGas") or 0),
        priority_fee_per_gas=tip,
    )


# --- IPFS pins ----------------------------------------------------------------------------------

PIN_LIVE = (PinStatus.QUEUED, PinStatus.PINNING)


@transaction.atomic
def pin_request(*, content: Content) -> Pin:
    """Ask the pinning service to pin the content's source under its CID."""
    if not content.source_path:
        raise Conflict("This content has no uploaded file to pin.", reason="no_source")
    if not settings.IPFS_PINNING_URL:
        raise Conflict(
            "No pinning service is configured (IPFS_PINNING_URL).", reason="no_pinning_service"
        )
    pin = Pin.objects.create(content=content, cid="", step_due_at=timezone.now())
    enqueue_on_commit(tasks.chain_pin_advance, pin.pk)
    return pin


def pin_advance(*, pin_id: int) -> Pin | None:
    """One step of a pin: send the content's CID, or poll the service's status. No lock is
    held; a duplicate step finds the pin the service already has instead of adding another."""
    pin = Pin.objects.select_related("content").filter(pk=pin_id).first()
    if pin is None or pin.status not in PIN_LIVE:
        return pin
    service = PinningService(settings.IPFS_PINNING_URL, settings.IPFS_PINNING_TOKEN)
    name = f"streamgate-{pin.content_id}"
    try:
        if not pin.request_id:
            # Computed at upload finalisation; a content finalised before that gets it once.
            pin.cid = pin.cid or content_source_cid(content=pin.content)
            Pin.objects.filter(pk=pin.pk).update(cid=pin.cid)
            # A POST whose answer was lost may have created the pin: look before adding again.
            status = service.find(cid=pin.cid, name=name) or service.add(
                cid=pin.cid, name=name, meta={"content": str(pin.content_id)}
            )
        else:
            status = service.status(pin.request_id)
    except (PinningError, SourceMissing) as error:
        if isinstance(error, SourceMissing) or error.permanent:
            Pin.objects.filter(pk=pin.pk).update(
                status=PinStatus.FAILED, error=str(error), cid=pin.cid, step_due_at=None
            )
            return Pin.objects.get(pk=pin.pk)
        raise
    if status.cid and not same_content(status.cid, pin.cid):
        Pin.objects.filter(pk=pin.pk).update(
            status=PinStatus.FAILED,
            cid=pin.cid,
            error=f"The service pinned {status.cid}, not {pin.cid}.",
            step_due_at=None,
        )
        return Pin.objects.get(pk=pin.pk)
    polling = status.status in PIN_LIVE
    with transaction.atomic():
        Pin.objects.filter(pk=pin.pk).update(
            cid=pin.cid,
            request_id=status.request_id,
            status=status.status,
            error=status.error or "",
            failures=0,
            step_due_at=(
                timezone.now() + timedelta(seconds=settings.IPFS_POLL_SECONDS) if polling else None
            ),
            updated_at=timezone.now(),
        )
        if polling:
            enqueue_on_commit_with(
                tasks.chain_pin_advance,
                (pin.pk,),
                options={"countdown": settings.IPFS_POLL_SECONDS},
            )
    return Pin.objects.get(pk=pin.pk)


def pin_postpone(*, pin_id: int, seconds: float) -> None:
    """Note that the pin's next step was put off (its task retries later), so that the reaper
    does not take the wait for a stall."""
    Pin.objects.filter(pk=pin_id, status__in=PIN_LIVE).update(
        step_due_at=timezone.now() + timedelta(seconds=seconds), updated_at=timezone.now()
    )


def pin_give_up(*, pin_id: int, message: str) -> None:
    """A pin whose service stayed unreachable through every retry fails with the reason."""
    Pin.objects.filter(pk=pin_id).exclude(status=PinStatus.PINNED).update(
        status=PinStatus.FAILED, error=message[:1000], step_due_at=None
    )


# --- the reaper -----------------------------------------------------------------------------------


def _overdue(stale_before: datetime) -> Q:
    # Rows from before step_due_at existed have only updated_at to go by.
    return Q(step_due_at__lt=stale_before) | Q(
        step_due_at__isnull=True, updated_at__lt=stale_before
    )


def chain_reap(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: resume registrations and pins whose next step is CHAIN_REAP_AFTER_SECONDS overdue
    (a worker died in it, a time limit stopped it, its message was lost), each resumption
    counted as a failure; one past CHAIN_STEP_MAX_FAILURES fails with the reason. Each row is
    claimed with a conditional update, so two reapers never resume one twice."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.CHAIN_REAP_AFTER_SECONDS)
    cap = settings.CHAIN_STEP_MAX_FAILURES
    counts = {"resumed": 0, "failed": 0, "pins_resumed": 0, "pins_failed": 0}
    stalled = Registration.objects.filter(status__in=LIVE).filter(lease_free(now))
    for registration in stalled.filter(_overdue(stale_before)):
        failures = registration.failures + 1
        still = (
            Registration.objects.filter(
                pk=registration.pk, status__in=LIVE, failures=registration.failures
            )
            .filter(lease_free(now))
            .filter(_overdue(stale_before))
        )
        with transaction.atomic():
            if failures >= cap:
                message = (
                    f"Gave up: the registration stopped moving {failures} times in a row "
                    f"(last error: {registration.error or 'none'})."
                )
                if still.update(
                    status=RegistrationStatus.FAILED,
                    error=message[:1000],
                    failures=failures,
                    step_due_at=None,
                    updated_at=now,
                ):
                    counts["failed"] += 1
            elif still.update(failures=failures, step_due_at=now, updated_at=now):
                enqueue_on_commit(tasks.chain_registration_advance, registration.pk)
                counts["resumed"] += 1
    for pin in Pin.objects.filter(status__in=PIN_LIVE).filter(_overdue(stale_before)):
        failures = pin.failures + 1
        pin_still = Pin.objects.filter(
            pk=pin.pk, status__in=PIN_LIVE, failures=pin.failures
        ).filter(_overdue(stale_before))
        with transaction.atomic():
            if failures >= cap:
                message = f"Gave up: pinning stopped moving {failures} times in a row."
                if pin.error:
                    message += f" Last error: {pin.error}"
                if pin_still.update(
                    status=PinStatus.FAILED,
                    error=message[:1000],
                    failures=failures,
                    step_due_at=None,
                    updated_at=now,
                ):
                    counts["pins_failed"] += 1
            elif pin_still.update(failures=failures, step_due_at=now, updated_at=now):
                enqueue_on_commit(tasks.chain_pin_advance, pin.pk)
                counts["pins_resumed"] += 1
    if any(counts.values()):
        logger.warning("chain reaped", extra=counts)
    return counts
