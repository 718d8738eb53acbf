"""Building, signing and sending EVM transactions for our signer: fees, nonces, reverts.

Nonces come from a row per (chain, signer) locked while a transaction is built, reconciled with
the node's pending count (asked before the row is locked: no network call under a lock), so two
workers never use one nonce and a restart never skips one. When the chain and the row disagree
for longer than a broadcast takes, nonces.py heals the row.
"""

import ast
import logging
import re
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from apps.chain.chains import Chain, artifact
from apps.chain.models import SignerNonce

logger = logging.getLogger(__name__)

GWEI = 10**9
DEFAULT_PRIORITY_FEE = 1 * GWEI
GAS_MARGIN = 1.2


class Reverted(Exception):
    """The transaction would revert; the message names the contract's custom error."""


class GasTooExpensive(Exception):
    def __init__(self, base_fee: int, ceiling_gwei: float) -> None:
        super().__init__(
            f"Gas is {base_fee / GWEI:.1f} gwei, above this chain's ceiling of {ceiling_gwei} "
            "gwei; the registration will be sent when it drops."
        )
        self.base_fee = base_fee


@dataclass(frozen=True)
class Fees:
    base_fee: int
    max_fee: int
    priority_fee: int

    def bumped(self, percent: int) -> "Fees":
        factor = 100 + percent
        return Fees(
            base_fee=self.base_fee,
            max_fee=self.max_fee * factor // 100 + 1,
            priority_fee=self.priority_fee * factor // 100 + 1,
        )


def current_fees(web3: Web3, chain: Chain) -> Fees:
    """EIP-1559 fees for the next block: twice the base fee plus the tip the node suggests;
    GasTooExpensive above the chain's ceiling."""
    block = web3.eth.get_block("latest")
    base_fee = int(block.get("baseFeePerGas") or 0)
    if chain.max_base_fee_gwei is not None and base_fee > chain.max_base_fee_gwei * GWEI:
        raise GasTooExpensive(base_fee, chain.max_base_fee_gwei)
    try:
        priority = int(web3.eth.max_priority_fee)
    except (Web3RPCError, ValueError, NotImplementedError):
        priority = DEFAULT_PRIORITY_FEE
    return Fees(base_fee=base_fee, max_fee=2 * base_fee + priority, priority_fee=priority)


def node_pending_count(web3: Web3, address: str) -> int:
    """The node's count of ``address``'s transactions, pending ones included: the floor for the
    next nonce. Ask it before next_nonce, outside any transaction."""
    return web3.eth.get_transaction_count(address, "pending")


def next_nonce(*, chain: Chain, address: str, node_pending: int) -> int:
    """Reserve the next nonce of ``address`` on ``chain``: a row lock held for one small write.
    Call inside the transaction that records the signed transaction, so that both commit or
    neither; ``node_pending`` is node_pending_count, asked beforehand (a later transaction of
    ours raised the row past it, so the row's value wins then)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_nonce must run inside a transaction")
    row, _ = SignerNonce.objects.select_for_update().get_or_create(
        chain=chain.caip2, address=address
    )
    nonce = max(row.next_nonce, node_pending)
    row.next_nonce = nonce + 1
    row.reserved_at = timezone.now()
    row.save(update_fields=["next_nonce", "reserved_at"])
    return nonce


def decode_revert(error: Exception, contract_names: tuple[str, ...]) -> str:
    """A readable reason for a revert: the custom error and its arguments when we know it."""
    data = getattr(error, "data", None)
    raw = data if isinstance(data, str) else _revert_bytes(error)
    if raw:
        selector = raw[2:10] if raw.startswith("0x") else raw[:8]
        for name in contract_names:
            for item in artifact(name)["abi"]:
                if item.get("type") != "error":
                    continue
                if function_abi_to_4byte_selector(item).hex() == selector:
                    return item["name"]
    message = str(error)
    return message[:300] or type(error).__name__


def _revert_bytes(error: Exception) -> str:
    """The revert data (hex) carried by a web3 or eth-tester exception, or ""."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # eth-tester re-raises, wrapped
        seen.add(id(current))
        for arg in getattr(current, "args", ()):
            if isinstance(arg, bytes) and len(arg) >= 4:
                return arg.hex()
            if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
                return arg
        current = current.__cause__ or current.__context__
    literal = re.search(r"execution reverted: (b(['\"]).*\2)\s*$", str(error), re.DOTALL)
    if literal:
        try:
            value = ast.literal_eval(literal.group(1))
        except (ValueError, SyntaxError):
            return ""
        return value.hex() if isinstance(value, bytes) else ""
    return ""


REVERT_ERRORS = (ContractLogicError, ContractCustomError)


def _tester_failure():
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # eth-tester is a dev dependency
        return ()
    return (TransactionFailed,)


def estimate_gas(call, sender: str, *, contract_names: tuple[str, ...]) -> int:
    """Gas for ``call`` with a margin; Reverted (with the custom error) if it would revert."""
    try:
        return int(call.estimate_gas({"from": sender}) * GAS_MARGIN)
    except REVERT_ERRORS + _tester_failure() as error:
        raise Reverted(decode_revert(error, contract_names)) from error


def sign(call, *, account: LocalAccount, nonce: int, gas: int, fees: Fees, chain_id: int) -> bytes:
    """The signed EIP-1559 transaction for ``call``, ready to broadcast."""
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": nonce,
            "chainId": chain_id,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
            "type": 2,
        }
    )
    return account.sign_transaction(tx).raw_transaction


def release_nonce(caip2: str, address: str, nonce: int | None) -> None:
    """Give back a nonce whose transaction never reached the node, if it is still the last one
    handed out (otherwise the gap is filled when a later transaction is replaced)."""
    if nonce is not None:
        SignerNonce.objects.filter(chain=caip2, address=address, next_nonce=nonce + 1).update(
            next_nonce=nonce
        )
