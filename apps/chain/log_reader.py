"""Reading the chain for the indexer: which contracts to follow, their logs in ``eth_getLogs``
ranges the node accepts, and those logs decoded into events.

- The followed contracts are ours (ChainContract rows) and every token contract a content's gate
  names on the chain.
- Ranges go up to the chain's cap and are halved whenever the node refuses one (-32005, "too
  many results", …); rate limits are not refusals, they propagate as transient errors.
- Decoding keeps only logs whose topic matches the kind of the contract that emitted them, and
  notes the accounts every NFT transfer touched.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import LogReceipt

from apps.chain.chains import artifact
from apps.chain.models import ChainContract, ChainEvent, ContractKind
from apps.content.models import Content

if TYPE_CHECKING:
    from apps.chain.indexer import IndexReport

logger = logging.getLogger(__name__)

# How nodes say "that range is too wide for me" (Alchemy, Infura, QuickNode, Geth, Erigon…).
# Rate limits ("exceeded its compute units", "too many requests") are not among them: those
# are transient errors, retried as such, not a reason to shrink the range.
_REFUSALS = (
    "query returned more than",
    "block range",
    "range is too large",
    "too many blocks",
    "exceeds the range",
    "response size exceeded",
    "log response size",
    "too many logs",
    "limit exceeded: max",
    "results exceed",
)
_RATE_LIMITS = ("rate limit", "too many requests", "compute units", "capacity", "429")


class RangeRefused(Exception):
    """The node would not answer eth_getLogs for a range of one block."""


@dataclass(frozen=True)
class Followed:
    """The contracts whose logs are read: checksummed addresses, and each one's kind."""

    addresses: list[ChecksumAddress]
    kinds: dict[str, str]  # lowercased address -> "registry" | "erc721" | "erc1155"


@dataclass
class Batch:
    """What one range of logs yields: events, block number -> (hash, parent hash), transfers."""

    events: list[ChainEvent] = field(default_factory=list)
    blocks: dict[int, tuple[str, str]] = field(default_factory=dict)
    transfers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    accesses: set[str] = field(default_factory=set)  # buyers and grantees in the registry


REGISTRY_EVENTS = (
    "ContentRegistered",
    "AccessGranted",
    "AccessPurchased",
    "OffersSet",
    "PayoutSet",
    "Withdrawn",
    "FeeSet",
)
# Events that change who may watch what: the access app forgets its answers about the account.
ACCESS_EVENTS = {"AccessGranted": "viewer", "AccessPurchased": "buyer"}


def event_abis() -> dict[bytes, tuple[str, dict[str, Any]]]:
    """topic0 -> (contract kind, event ABI) for every event we index."""
    table = {}
    for name, kind, events in (
        ("ContentRegistry", "registry", REGISTRY_EVENTS),
        ("TestNFT721", "erc721", ("Transfer",)),
        ("TestNFT1155", "erc1155", ("TransferSingle", "TransferBatch")),
    ):
        for item in artifact(name)["abi"]:
            if item.get("type") == "event" and item["name"] in events:
                table[event_abi_to_log_topic(item)] = (kind, item)
    return table


# --- what to follow ----------------------------------------------------------------------------


def _gate_contracts(caip2: str) -> dict[str, str]:
    """Token contracts on ``caip2`` that any content's gate names: address -> kind."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for kind in ("erc721", "erc1155"):
                spec = node.get(kind)
                if isinstance(spec, dict) and spec.get("chain") == caip2 and spec.get("contract"):
                    found[str(spec["contract"]).lower()] = kind
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for gate in Content.objects.exclude(gate=None).values_list("gate", flat=True).iterator():
        walk(gate)
    return found


def follows_anything(caip2: str) -> bool:
    """Whether the chain has our contracts, or token contracts that gates name."""
    return ChainContract.objects.filter(chain=caip2).exists() or bool(_gate_contracts(caip2))


def followed_contracts(caip2: str) -> Followed:
    kinds = _gate_contracts(caip2)
    kind_of: dict[str, str] = {
        ContractKind.REGISTRY: "registry",
        ContractKind.NFT721: "erc721",
        ContractKind.NFT1155: "erc1155",
    }
    for address, kind in ChainContract.objects.filter(chain=caip2).values_list("address", "kind"):
        if kind in kind_of:  # test ERC-20s have no events we index
            kinds[address.lower()] = kind_of[kind]
    addresses = sorted(Web3.to_checksum_address(address) for address in kinds)
    return Followed(addresses=addresses, kinds=kinds)


# --- reading logs ------------------------------------------------------------------------------


def get_logs(
    web3: Web3,
    addresses: list[ChecksumAddress],
    topics: dict,
    start: int,
    end: int,
    step: int,
    report: IndexReport,
) -> tuple[list[LogReceipt], int, int]:
    """Logs of [start, end], halving the range while the node refuses it. Returns the logs,
    the end actually covered and the step that worked."""
    if not addresses:
        return [], end, step
    while True:
        try:
            logs = web3.eth.get_logs(
                {
                    "fromBlock": start,
                    "toBlock": end,
                    "address": addresses,
                    "topics": [[Web3.to_hex(topic) for topic in topics]],
                }
            )
            return list(logs), end, step
        except (Web3RPCError, ValueError) as error:
            if not refused(error):
                raise
            if end == start:
                raise RangeRefused(
                    f"the node refuses eth_getLogs even for block {start}"
                ) from error
            step = max(1, (end - start + 1) // 2)
            end = start + step - 1
            report.ranges_halved += 1
            logger.info("log range halved", extra={"start": start, "step": step})


def refused(error: Exception) -> bool:
    text = str(error).lower()
    if any(word in text for word in _RATE_LIMITS):
        return False
    response = getattr(error, "rpc_response", None) or {}
    code = str((response.get("error") or {}).get("code", ""))
    return code == "-32005" or any(word in text for word in _REFUSALS)


def decode(
    web3: Web3, caip2: str, logs: Iterable[LogReceipt], followed: Followed, topics: dict
) -> Batch:
    """The logs that are events of the kind their contract emits, as unsaved ChainEvents."""
    batch = Batch()
    codec = web3.codec
    from web3._utils.events import get_event_data

    for log in logs:
        topic0 = bytes(log["topics"][0]) if log["topics"] else b""
        known = topics.get(topic0)
        address = Web3.to_checksum_address(log["address"])
        if known is None or followed.kinds.get(address.lower()) != known[0]:
            continue
        try:
            decoded = get_event_data(codec, known[1], log)
        except Exception:  # noqa: BLE001 - an ERC-20 Transfer has the ERC-721 topic; not ours
            logger.debug("log not decodable as %s", known[1]["name"])
            continue
        args = {key: _jsonable(value) for key, value in decoded["args"].items()}
        block_hash = log["blockHash"].to_0x_hex()
        batch.events.append(
            ChainEvent(
                chain=caip2,
                block_number=log["blockNumber"],
                block_hash=block_hash,
                tx_hash=log["transactionHash"].to_0x_hex(),
                log_index=log["logIndex"],
                address=address,
                name=decoded["event"],
                args=args,
            )
        )
        batch.blocks.setdefault(log["blockNumber"], (block_hash, ""))
        if decoded["event"] in ACCESS_EVENTS:
            batch.accesses.add(args[ACCESS_EVENTS[decoded["event"]]])
        if decoded["event"] in ("Transfer", "TransferSingle", "TransferBatch"):
            for account in (args.get("from"), args.get("to")):
                if account and int(account, 16) != 0:
                    batch.transfers[address].add(account)
    return batch


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
