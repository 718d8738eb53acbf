"""Chains by CAIP-2 id, their RPC endpoints, web3 clients and the contracts' ABIs.

``CHAIN_RPC_URLS`` (JSON, from the environment) names the chains StreamGate talks to; chains not
named have no RPC. ``CHAIN_OVERRIDES`` adjusts a chain's confirmations, log range cap or gas
ceiling. The URL ``eth-tester://<name>`` selects an in-process py-evm chain (tests, demos). A chain
may name several providers (a list): providers.py fails over between them.
"""

import json
import threading
import uuid
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount
from requests.exceptions import RequestException
from web3 import Web3
from web3.types import RPCEndpoint

from apps.chain.providers import FailoverProvider

ARTIFACTS = Path(settings.BASE_DIR) / "contracts" / "build"
ETH_TESTER_CHAIN_ID = 131277322940537


class ChainNotConfigured(Exception):
    """No RPC endpoint for this chain (CHAIN_RPC_URLS), or an unknown CAIP-2 id."""


class SignerMissing(Exception):
    """CHAIN_SIGNER_KEY is not set."""


@dataclass(frozen=True)
class Chain:
    caip2: str
    name: str
    kind: str  # "evm" | "solana"
    chain_id: int | None
    confirmations: int
    log_range: int  # the most blocks one eth_getLogs may span
    finalized_tag: bool  # the node answers the "finalized" block tag
    max_base_fee_gwei: float | None = None

    @property
    def is_evm(self) -> bool:
        return self.kind == "evm"


KNOWN_CHAINS = {
    chain.caip2: chain
    for chain in (
        Chain("eip155:1", "Ethereum", "evm", 1, 12, 2_000, True, 80),
        Chain("eip155:10", "OP Mainnet", "evm", 10, 10, 5_000, True, 5),
        Chain("eip155:137", "Polygon PoS", "evm", 137, 64, 3_000, True, 1_000),
        Chain("eip155:8453", "Base", "evm", 8453, 10, 5_000, True, 5),
        Chain("eip155:42161", "Arbitrum One", "evm", 42161, 20, 10_000, True, 5),
        Chain("eip155:11155111", "Sepolia", "evm", 11155111, 6, 5_000, True, None),
        Chain("eip155:31337", "Local (Hardhat/Anvil)", "evm", 31337, 0, 2_000, False, None),
        Chain(
            f"eip155:{ETH_TESTER_CHAIN_ID}",
            "eth-tester",
            "evm",
            ETH_TESTER_CHAIN_ID,
            0,
            2_000,
            False,
            None,
        ),
        Chain("solana:mainnet", "Solana", "solana", None, 0, 0, False, None),
        Chain("solana:devnet", "Solana devnet", "solana", None, 0, 0, False, None),
    )
}

# Where viewers can look an address up (the watch page links a gate's contract there); local
# and test chains have no public explorer.
EXPLORERS = {
    "eip155:1": "https://etherscan.io/address/{address}",
    "eip155:10": "https://optimistic.etherscan.io/address/{address}",
    "eip155:137": "https://polygonscan.com/address/{address}",
    "eip155:8453": "https://basescan.org/address/{address}",
    "eip155:42161": "https://arbiscan.io/address/{address}",
    "eip155:11155111": "https://sepolia.etherscan.io/address/{address}",
    "solana:mainnet": "https://explorer.solana.com/address/{address}",
    "solana:devnet": "https://explorer.solana.com/address/{address}?cluster=devnet",
}

_OVERRIDABLE = {"confirmations", "log_range", "finalized_tag", "max_base_fee_gwei"}


def chain(caip2: str) -> Chain:
    """The chain named ``caip2`` with CHAIN_OVERRIDES applied; unknown eip155 ids are EVM
    chains with conservative defaults."""
    known = KNOWN_CHAINS.get(caip2)
    if known is None:
        namespace, _, reference = caip2.partition(":")
        if namespace != "eip155" or not reference.isdigit():
            raise ChainNotConfigured(f"Unknown chain {caip2!r}; use a CAIP-2 id like eip155:1.")
        known = Chain(caip2, caip2, "evm", int(reference), 12, 1_000, False, None)
    overrides = settings.CHAIN_OVERRIDES.get(caip2, {})
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise ValueError(f"CHAIN_OVERRIDES[{caip2!r}] has unknown keys {sorted(unknown)}")
    return replace(known, **overrides)


def chain_name(caip2: str) -> str:
    """The chain's name for people ("Polygon PoS"); the CAIP-2 id for a chain we do not know."""
    known = KNOWN_CHAINS.get(caip2)
    return known.name if known else caip2


def rpc_urls(caip2: str) -> list[str]:
    """The chain's RPC providers, the preferred first: CHAIN_RPC_URLS names one URL or a list."""
    value = settings.CHAIN_RPC_URLS.get(caip2)
    urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    urls = [url for url in urls if isinstance(url, str) and url]
    if not urls:
        raise ChainNotConfigured(f"No RPC endpoint for {caip2}; add it to CHAIN_RPC_URLS.")
    return urls


def rpc_url(caip2: str) -> str:
    """The chain's first (preferred) RPC provider; ChainNotConfigured without one."""
    return rpc_urls(caip2)[0]


def configured_chains() -> list[str]:
    """CAIP-2 ids of every chain with an RPC endpoint (EVM and Solana), sorted."""
    return sorted(caip2 for caip2, urls in settings.CHAIN_RPC_URLS.items() if urls)


def configured_evm_chains() -> list[Chain]:
    return [chain(caip2) for caip2 in settings.CHAIN_RPC_URLS if caip2.startswith("eip155:")]


# --- web3 clients -------------------------------------------------------------------------------

_testers: dict[str, Any] = {}
_lock = threading.Lock()


def eth_tester(name: str = "local"):
    """The in-process py-evm chain behind ``eth-tester://<name>`` (one per process and name)."""
    from eth_tester import EthereumTester, PyEVMBackend

    with _lock:
        if name not in _testers:
            _testers[name] = EthereumTester(PyEVMBackend())
        return _testers[name]


def web3_for(caip2: str, *, timeout: float | None = None, retries: bool = True) -> Web3:
    """A web3 client for the chain: HTTP with timeouts and retries, or an eth-tester chain.

    ``timeout`` (default CHAIN_RPC_TIMEOUT) bounds each HTTP call; ``retries=False`` suits
    callers with a deadline of their own (a viewer waiting for a gate decision).
    The node's chain id is checked once against the CAIP-2 id: a wrong URL in CHAIN_RPC_URLS
    must not send transactions to, or index, another chain."""
    urls = rpc_urls(caip2)
    if urls[0].startswith("eth-tester://"):
        from web3 import EthereumTesterProvider

        return Web3(
            EthereumTesterProvider(eth_tester(urls[0].removeprefix("eth-tester://") or "local"))
        )
    web3 = _http_web3(caip2, tuple(urls), timeout or settings.CHAIN_RPC_TIMEOUT, retries)
    _verify_chain_ids(caip2, cast(FailoverProvider, web3.provider))
    return web3


_verified: set[tuple[str, str]] = set()


def _verify_chain_ids(caip2: str, provider: FailoverProvider) -> None:
    """Ask each provider not checked yet for its chain id; ChainNotConfigured if one serves
    another chain. A provider that does not answer is checked on a later call; if none answers,
    its error propagates."""
    expected = chain(caip2).chain_id
    unreachable: Exception | None = None
    answered_any = False
    for url in provider.urls:
        if (caip2, url) in _verified:
            answered_any = True
            continue
        try:
            response = provider.call_one(url, RPCEndpoint("eth_chainId"), [])
        except (RequestException, OSError, ValueError) as error:
            unreachable = error
            continue
        result = response.get("result")  # a QUANTITY: hex, though some nodes answer a number
        answered = int(result, 16) if isinstance(result, str) else result
        if expected is not None and answered != expected:
            raise ChainNotConfigured(
                f"The RPC endpoint for {caip2} serves chain id {answered}, not {expected}; "
                "fix CHAIN_RPC_URLS."
            )
        _verified.add((caip2, url))
        answered_any = True
    if not answered_any and unreachable is not None:
        raise unreachable


@cache
def _http_web3(caip2: str, urls: tuple[str, ...], timeout: float, retries: bool = True) -> Web3:
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import Timeout
    from web3.providers.rpc.utils import ExceptionRetryConfiguration

    # None, not retries=0: web3 7 answers None without calling when asked for 0 retries.
    retry = (
        ExceptionRetryConfiguration(
            errors=(RequestsConnectionError, Timeout), retries=3, backoff_factor=0.25
        )
        if retries
        else None
    )
    return Web3(FailoverProvider(caip2, list(urls), timeout=timeout, retry_configuration=retry))


def signer() -> LocalAccount:
    """The account that deploys and registers, from CHAIN_SIGNER_KEY (never logged)."""
    key = settings.CHAIN_SIGNER_KEY
    if not key:
        raise SignerMissing("Set CHAIN_SIGNER_KEY (a hex private key) to send transactions.")
    return Account.from_key(key)


@cache
def artifact(name: str) -> dict[str, Any]:
    """contracts/build/<name>.json: abi, bytecode, compiler, sourceHash."""
    return json.loads((ARTIFACTS / f"{name}.json").read_text())


def content_id_bytes32(content_id: uuid.UUID | str) -> bytes:
    """A content's id as the registry's bytes32: the UUID's 16 bytes, left-padded."""
    return uuid.UUID(str(content_id)).bytes.rjust(32, b"\0")


def contract_for(web3: Web3, name: str, address: str):
    return web3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name)["abi"])
