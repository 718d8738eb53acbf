"""Every write of the chain app except the indexer's (indexer.py): deploying contracts,
registering contents on chain, gas samples, IPFS pins."""

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from requests.exceptions import RequestException
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError

from apps.access.gates import gate_hash
from apps.chain.chains import (
    Chain,
    ChainNotConfigured,
    SignerMissing,
    artifact,
    chain,
    contract_for,
    signer,
    web3_for,
)
from apps.chain.models import (
    ChainContract,
    ContractKind,
    GasSample,
    Pin,
    PinStatus,
    Registration,
    RegistrationStatus,
)
from apps.chain.pinning import PinningError, PinningService
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
from apps.content.cid import cid_of_stream, same_content
from apps.content.models import Content, ContentStatus
from apps.content.storage import storage_read_chunks
from streamgate.celery import enqueue_on_commit, enqueue_on_commit_with
from streamgate.exceptions import Conflict, DomainError, NotFound

logger = logging.getLogger(__name__)

ARTIFACT_OF = {
    ContractKind.REGISTRY: "ContentRegistry",
    ContractKind.NFT721: "TestNFT721",
    ContractKind.NFT1155: "TestNFT1155",
}
RECEIPT_TIMEOUT = 120
MAX_REPLACEMENTS = 5  # 1.15^5: fees at most doubled by bumping


def content_id_bytes32(content_id: uuid.UUID | str) -> bytes:
    """A content's id as the registry's bytes32: the UUID's 16 bytes, left-padded."""
    return uuid.UUID(str(content_id)).bytes.rjust(32, b"\0")


# --- deploying --------------------------------------------------------------------------------


def _send_and_wait(web3: Web3, call, *, spec: Chain, names: tuple[str, ...]) -> dict:
    account = signer()
    fees = current_fees(web3, spec)
    gas = estimate_gas(call, account.address, contract_names=names)
    with transaction.atomic():
        nonce = next_nonce(web3, spec, account.address)
        raw = sign(call, account=account, nonce=nonce, gas=gas, fees=fees, chain_id=spec.chain_id)
    try:
        tx_hash = web3.eth.send_raw_transaction(raw)
    except (Web3RPCError, ValueError) as error:
        release_nonce(spec.caip2, account.address, nonce)
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
    if receipt["status"] != 1:
        raise DomainError(f"Deploying {compiled['contractName']} on {caip2} failed.")
    record = ChainContract.objects.create(
        chain=caip2,
        kind=kind,
        address=Web3.to_checksum_address(receipt["contractAddress"]),
        deployed_block=receipt["blockNumber"],
        deploy_tx=receipt["transactionHash"].to_0x_hex(),
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
    """Queue the registration of a ready content on ``caip2``'s registry."""
    from apps.chain.tasks import chain_registration_advance

    chain(caip2)  # an unknown chain is an error here, not in the task
    if content.status != ContentStatus.READY:
        raise Conflict("Only ready content can be registered on chain.", reason="not_ready")
    if price < 0:
        raise DomainError("The price cannot be negative.", reason="price")
    contract = registry_for(caip2)
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
    )
    enqueue_on_commit(chain_registration_advance, registration.pk)
    return registration


def _reschedule(registration: Registration, seconds: float) -> None:
    from apps.chain.tasks import chain_registration_advance

    enqueue_on_commit_with(
        chain_registration_advance, (registration.pk,), options={"countdown": seconds}
    )


def registration_advance(*, registration_id: int) -> Registration | None:
    """Move a registration one step: send it, watch it, replace it if stuck, confirm it.
    Reschedules itself until it is confirmed or failed.

    The step runs under a lock on the registration's row, so a duplicate delivery of the task
    waits and then finds the new state instead of sending a second transaction; a signed
    transaction is broadcast only after its nonce and hash are committed.
    """
    outgoing: bytes | None = None
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update()
            .select_related("content", "contract")
            .filter(pk=registration_id)
            .first()
        )
        if registration is None or registration.status in (
            RegistrationStatus.CONFIRMED,
            RegistrationStatus.FAILED,
        ):
            return registration
        spec = chain(registration.chain)
        web3 = web3_for(registration.chain)
        try:
            if registration.status in (RegistrationStatus.PENDING, RegistrationStatus.WAITING_GAS):
                outgoing = _submit(registration, spec, web3)
            else:
                outgoing = _track(registration, spec, web3)
        except (SignerMissing, ChainNotConfigured) as error:
            _fail(registration, str(error))
    if outgoing is not None:
        _broadcast(registration_id, web3, outgoing)
    return Registration.objects.filter(pk=registration_id).first()


def _fail(registration: Registration, message: str) -> None:
    Registration.objects.filter(pk=registration.pk).update(
        status=RegistrationStatus.FAILED, error=message
    )
    logger.warning(
        "registration failed", extra={"registration_id": registration.pk, "error": message}
    )


def _registry_call(registration: Registration, web3: Web3):
    registry = contract_for(web3, "ContentRegistry", registration.contract.address)
    return registry.functions.register(
        content_id_bytes32(registration.content_id),
        Web3.to_checksum_address(registration.creator),
        registration.cid,
        int(registration.price),
        bytes.fromhex(registration.gate_hash.removeprefix("0x")),
    )


def _submit(registration: Registration, spec: Chain, web3: Web3) -> bytes | None:
    account = signer()
    if not registration.cid:
        registration.cid = cid_of_stream(storage_read_chunks(registration.content.source_path))
    # Until creators link wallets (access app), StreamGate's signer stands in as the creator.
    registration.creator = registration.creator or account.address
    Registration.objects.filter(pk=registration.pk).update(
        cid=registration.cid, creator=registration.creator
    )
    try:
        fees = current_fees(web3, spec)
    except GasTooExpensive as error:
        Registration.objects.filter(pk=registration.pk).update(
            status=RegistrationStatus.WAITING_GAS, error=str(error)
        )
        _reschedule(registration, 300)
        return None
    call = _registry_call(registration, web3)
    try:
        gas = estimate_gas(call, account.address, contract_names=("ContentRegistry",))
    except Reverted as error:
        _fail(registration, f"The registry refused the registration: {error}.")
        return None
    shortfall = gas * fees.max_fee - web3.eth.get_balance(account.address)
    if shortfall > 0:
        _fail(
            registration,
            f"The signer {account.address} lacks {shortfall / 10**18:.6f} of the "
            "native coin to pay for gas; fund it and register again.",
        )
        return None
    nonce = next_nonce(web3, spec, account.address)
    raw = sign(call, account=account, nonce=nonce, gas=gas, fees=fees, chain_id=spec.chain_id)
    Registration.objects.filter(pk=registration.pk).update(
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
    _reschedule(registration, 2)
    return raw


def _broadcast(registration_id: int, web3: Web3, raw: bytes) -> None:
    """Send a committed transaction. If the node is unreachable, tracking sends it again once
    it counts as stuck; if the signer cannot pay, the registration fails and frees its nonce."""
    try:
        web3.eth.send_raw_transaction(raw)
    except (Web3RPCError, ValueError) as error:
        text = str(error).lower()
        if "insufficient funds" in text:
            registration = Registration.objects.get(pk=registration_id)
            _fail(
                registration,
                f"The signer {registration.sender} cannot pay for gas; fund it and register again.",
            )
            release_nonce(registration.chain, registration.sender, registration.nonce)
        elif "already known" not in text and "nonce too low" not in text:
            logger.warning(
                "broadcast failed; tracking will resend",
                extra={"registration_id": registration_id, "error": str(error)[:200]},
            )
    except (RequestException, TimeoutError, ConnectionError):
        logger.warning(
            "broadcast failed; tracking will resend",
            extra={"registration_id": registration_id},
            exc_info=True,
        )
    else:
        logger.info("registration sent", extra={"registration_id": registration_id})


def _receipt(web3: Web3, registration: Registration):
    for tx_hash in [registration.tx_hash, *registration.replaced_tx_hashes]:
        try:
            return web3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            continue  # not mined (yet), or replaced by one of the others
    return None


def _track(registration: Registration, spec: Chain, web3: Web3) -> bytes | None:
    receipt = _receipt(web3, registration)
    if receipt is None:
        return _unmined(registration, spec, web3)
    if receipt["status"] != 1:
        _fail(registration, f"The transaction {receipt['transactionHash'].to_0x_hex()} reverted.")
        return None
    head = web3.eth.block_number
    if head - receipt["blockNumber"] < spec.confirmations:
        _reschedule(registration, 5)
        return None
    if web3.eth.get_block(receipt["blockNumber"])["hash"] != receipt["blockHash"]:
        _reschedule(registration, 5)  # reorganised away: pending again, keep watching
        return None
    Registration.objects.filter(pk=registration.pk).update(
        status=RegistrationStatus.CONFIRMED,
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block_number=receipt["blockNumber"],
        block_hash=receipt["blockHash"].to_0x_hex(),
        confirmed_at=timezone.now(),
    )
    logger.info("registration confirmed", extra={"registration_id": registration.pk})
    return None


def _unmined(registration: Registration, spec: Chain, web3: Web3) -> bytes | None:
    nonce_used = web3.eth.get_transaction_count(registration.sender, "latest") > registration.nonce
    # The nonce is used, but by none of our transactions (receipts looked up again: no race).
    if nonce_used and _receipt(web3, registration) is None:
        _fail(
            registration,
            f"The transaction was dropped: nonce {registration.nonce} was "
            "used by another transaction of the signer.",
        )
        return None
    waited = timezone.now() - registration.submitted_at
    if waited < timedelta(seconds=settings.CHAIN_STUCK_AFTER_SECONDS):
        _reschedule(registration, 5)
        return None
    if len(registration.replaced_tx_hashes) >= MAX_REPLACEMENTS:
        _reschedule(registration, 60)  # fees doubled already: wait for the network
        return None
    try:
        fresh = current_fees(web3, spec)
    except GasTooExpensive:
        _reschedule(registration, 60)
        return None
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
        _reschedule(registration, 5)
        return None
    raw = sign(
        call, account=account, nonce=registration.nonce, gas=gas, fees=fees, chain_id=spec.chain_id
    )
    Registration.objects.filter(pk=registration.pk).update(
        tx_hash=Web3.keccak(raw).to_0x_hex(),
        replaced_tx_hashes=[registration.tx_hash, *registration.replaced_tx_hashes],
        max_fee_per_gas=fees.max_fee,
        max_priority_fee_per_gas=fees.priority_fee,
        submitted_at=timezone.now(),
        attempts=registration.attempts + 1,
    )
    _reschedule(registration, 5)
    logger.info("registration fees bumped", extra={"registration_id": registration.pk})
    return raw


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


@transaction.atomic
def pin_request(*, content: Content) -> Pin:
    """Compute the source's CID and ask the pinning service to pin it."""
    from apps.chain.tasks import chain_pin_advance

    if not content.source_path:
        raise Conflict("This content has no uploaded file to pin.", reason="no_source")
    if not settings.IPFS_PINNING_URL:
        raise Conflict(
            "No pinning service is configured (IPFS_PINNING_URL).", reason="no_pinning_service"
        )
    pin = Pin.objects.create(content=content, cid="")
    enqueue_on_commit(chain_pin_advance, pin.pk)
    return pin


def pin_advance(*, pin_id: int) -> Pin | None:
    """One step of a pin: compute the CID and send it, or poll the service's status."""
    from apps.chain.tasks import chain_pin_advance

    pin = Pin.objects.select_related("content").filter(pk=pin_id).first()
    if pin is None or pin.status in (PinStatus.PINNED, PinStatus.FAILED):
        return pin
    service = PinningService(settings.IPFS_PINNING_URL, settings.IPFS_PINNING_TOKEN)
    name = f"streamgate-{pin.content_id}"
    try:
        if not pin.request_id:
            pin.cid = pin.cid or cid_of_stream(storage_read_chunks(pin.content.source_path))
            Pin.objects.filter(pk=pin.pk).update(cid=pin.cid)
            # A POST whose answer was lost may have created the pin: look before adding again.
            status = service.find(cid=pin.cid, name=name) or service.add(
                cid=pin.cid, name=name, meta={"content": str(pin.content_id)}
            )
        else:
            status = service.status(pin.request_id)
    except PinningError as error:
        if error.permanent:
            Pin.objects.filter(pk=pin.pk).update(
                status=PinStatus.FAILED, error=str(error), cid=pin.cid
            )
            return Pin.objects.get(pk=pin.pk)
        raise
    if status.cid and not same_content(status.cid, pin.cid):
        Pin.objects.filter(pk=pin.pk).update(
            status=PinStatus.FAILED,
            cid=pin.cid,
            error=f"The service pinned {status.cid}, not {pin.cid}.",
        )
        return Pin.objects.get(pk=pin.pk)
    Pin.objects.filter(pk=pin.pk).update(
        cid=pin.cid,
        request_id=status.request_id,
        status=status.status,
        error=status.error or "",
    )
    if status.status in (PinStatus.QUEUED, PinStatus.PINNING):
        enqueue_on_commit_with(
            chain_pin_advance, (pin.pk,), options={"countdown": settings.IPFS_POLL_SECONDS}
        )
    return Pin.objects.get(pk=pin.pk)


def pin_give_up(*, pin_id: int, message: str) -> None:
    """A pin whose service stayed unreachable through every retry fails with the reason."""
    Pin.objects.filter(pk=pin_id).exclude(status=PinStatus.PINNED).update(
        status=PinStatus.FAILED, error=message[:1000]
    )
