"""Several RPC providers per chain: calls go to the healthiest, fail over on errors and timeouts,
and skip providers whose head lags.

``CHAIN_RPC_URLS`` may name a list of providers for a chain. web3 7 has no failover of its own
(``AutoProvider`` picks the first provider that connects, once), so ``FailoverProvider`` is a small
web3 provider wrapping one ``HTTPProvider`` per URL; the Solana check uses the same health records
around its own client (``ranked`` and ``record``). The design, kept simple:

- Health lives in this process's memory, per (chain, URL): a latency average (EWMA), failures in a
  row, a cooldown, and the last head (block number) the provider reported. Processes do not share
  it: each finds a dead provider with its first failed call and then leaves it alone.
- A failed call (connection error, HTTP error such as a 500, a timeout, an unreadable answer)
  puts the provider in cooldown for 1, 2, 4… seconds up to CHAIN_RPC_COOLDOWN_SECONDS and the
  call goes to the next one. When the cooldown ends the provider is back in its place, so its next
  call is the probe: a recovered provider gets traffic again, a still-broken one a longer cooldown.
  A JSON-RPC error answer (a revert, a refused range) is an answer, not a failure.
- Order: providers in cooldown or lagging come last (tried only when every other one failed);
  among the rest, one whose latency is over twice the fastest's (+50 ms) goes after the fast ones;
  otherwise the order of CHAIN_RPC_URLS decides, so the first-listed provider is the primary.
- Heads: every eth_blockNumber answer updates its provider's head; when a head is older than
  CHAIN_RPC_HEAD_MAX_AGE_SECONDS all providers are asked theirs. A provider more than
  CHAIN_RPC_MAX_LAG_BLOCKS behind the best head is lagging.
- A call about a given block (eth_getLogs up to block N, eth_getBlockByNumber N) goes only to a
  provider whose head, asked afresh if need be, is at least N: the indexer never reads logs from a
  provider that has not seen the blocks it asks about (it would get none, silently). If none has
  them, ``ProvidersBehind`` (a ConnectionError: transient, the caller tries again later).
- The head (eth_blockNumber) and a pending transaction count (the floor of the signer's next
  nonce) are asked of every healthy provider and the highest answer wins: one behind, or without
  our transaction in its mempool, answers less (the indexer would fall behind, the nonce row be
  "healed" wrongly).
- One provider alone is used as before (its own retries, no head questions).

Every HTTP call to a provider counts in ``streamgate_rpc_requests_total{chain,provider,outcome}``
(outcome ok | error | timeout; provider is the URL's host and port, never its path or query,
which may hold an API key).
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from requests.exceptions import RequestException
from requests.exceptions import Timeout as RequestsTimeout
from web3 import Web3
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from streamgate.metrics import RPC_REQUESTS

logger = logging.getLogger(__name__)

EWMA = 0.3  # weight of the newest latency sample
SLOW_FACTOR, SLOW_MARGIN = 2.0, 0.05


class ProvidersBehind(ConnectionError):
    """No provider of the chain has reached the block a call is about (yet)."""


@dataclass
class Health:
    label: str
    latency: float | None = None  # seconds, EWMA of answered calls
    failures: int = 0  # in a row
    down_until: float = 0.0  # time.monotonic() until which the provider is left alone
    head: int | None = None
    head_at: float = -math.inf


_health: dict[tuple[str, str], Health] = {}
_lock = threading.Lock()


def provider_label(url: str) -> str:
    """The provider's name in metrics and logs: host and port (a path may hold an API key)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def health(caip2: str, url: str) -> Health:
    with _lock:
        found = _health.get((caip2, url))
        if found is None:
            found = _health[(caip2, url)] = Health(label=provider_label(url))
        return found


def record(caip2: str, url: str, outcome: str, seconds: float, *, head: int | None = None) -> None:
    """Note one call's outcome (ok | error | timeout) and, for ok, its latency and any head."""
    state = health(caip2, url)
    RPC_REQUESTS.labels(chain=caip2, provider=state.label, outcome=outcome).inc()
    now = time.monotonic()
    with _lock:
        if outcome == "ok":
            state.failures = 0
            state.down_until = 0.0
            state.latency = (
                seconds if state.latency is None else EWMA * seconds + (1 - EWMA) * state.latency
            )
            if head is not None:
                state.head, state.head_at = head, now
            return
        state.failures += 1
        cooldown = min(settings.CHAIN_RPC_COOLDOWN_SECONDS, 2.0 ** (state.failures - 1))
        state.down_until = now + cooldown
    logger.warning(
        "rpc provider failed",
        extra={
            "chain": caip2,
            "provider": state.label,
            "outcome": outcome,
            "failures": state.failures,
            "cooldown_seconds": cooldown,
        },
    )


def lagging(caip2: str, urls: list[str]) -> set[str]:
    """The providers whose last head is more than CHAIN_RPC_MAX_LAG_BLOCKS behind the best."""
    heads = {url: health(caip2, url).head for url in urls}
    known = [head for head in heads.values() if head is not None]
    if not known:
        return set()
    best = max(known)
    return {
        url
        for url, head in heads.items()
        if head is not None and best - head > settings.CHAIN_RPC_MAX_LAG_BLOCKS
    }


def ranked(caip2: str, urls: list[str]) -> list[str]:
    """``urls`` in the order to try them: healthy ones first (the fast ones in configured
    order, then slower ones), then those in cooldown or lagging (the soonest back first)."""
    if len(urls) == 1:
        return list(urls)
    now = time.monotonic()
    behind = lagging(caip2, urls)
    states = {url: health(caip2, url) for url in urls}
    up = [url for url in urls if states[url].down_until <= now and url not in behind]
    latencies = [latency for url in up if (latency := states[url].latency) is not None]
    fastest = min(latencies, default=None)

    def slowness(url: str) -> float:
        latency = states[url].latency
        if fastest is None or latency is None or latency <= fastest * SLOW_FACTOR + SLOW_MARGIN:
            return 0.0
        return latency

    fast_first = sorted(up, key=lambda url: (slowness(url), urls.index(url)))
    rest = sorted(
        (url for url in urls if url not in up),
        key=lambda url: (url in behind, states[url].down_until),
    )
    return fast_first + rest


def _block_asked(method: str, params: Any) -> int | None:
    """The block number a call is about, when it names one (eth_getLogs' toBlock,
    eth_getBlockByNumber's number); None for tags such as "latest"."""
    try:
        if method == "eth_getLogs":
            value = params[0].get("toBlock")
        elif method == "eth_getBlockByNumber":
            value = params[0]
        else:
            return None
    except (IndexError, AttributeError, TypeError):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    return None


class FailoverProvider(JSONBaseProvider):
    """A web3 provider over several HTTP providers of one chain (see the module docstring)."""

    def __init__(
        self, caip2: str, urls: list[str], *, timeout: float, retry_configuration: Any = None
    ) -> None:
        super().__init__()
        self.caip2, self.urls = caip2, list(urls)
        self.members = {
            url: Web3.HTTPProvider(
                url,
                request_kwargs={"timeout": timeout},
                # A single provider keeps its own retries; several fail over instead.
                exception_retry_configuration=retry_configuration if len(urls) == 1 else None,
            )
            for url in self.urls
        }

    def __str__(self) -> str:
        return f"FailoverProvider({self.caip2}: {', '.join(provider_label(u) for u in self.urls)})"

    def is_connected(self, show_traceback: bool = False) -> bool:
        return any(member.is_connected() for member in self.members.values())

    def call_one(self, url: str, method: RPCEndpoint, params: Any) -> RPCResponse:
        """One call to one provider, timed and recorded; its transport errors propagate."""
        started = time.monotonic()
        try:
            response = self.members[url].make_request(method, params)
        except (RequestsTimeout, TimeoutError):
            record(self.caip2, url, "timeout", time.monotonic() - started)
            raise
        except (RequestException, OSError, ValueError):
            record(self.caip2, url, "error", time.monotonic() - started)
            raise
        head = None
        if method == "eth_blockNumber" and isinstance(response.get("result"), str):
            head = int(response["result"], 16)
        record(self.caip2, url, "ok", time.monotonic() - started, head=head)
        return response

    def head_of(self, url: str, *, max_age: float) -> int | None:
        """The provider's head, asked again when older than ``max_age`` seconds; None when it
        does not answer."""
        state = health(self.caip2, url)
        if state.head is not None and time.monotonic() - state.head_at <= max_age:
            return state.head
        if state.down_until > time.monotonic():
            return state.head
        try:
            self.call_one(url, RPCEndpoint("eth_blockNumber"), [])
        except (RequestException, OSError, ValueError):
            return None
        return health(self.caip2, url).head

    def _highest(self, order: list[str], method: RPCEndpoint, params: Any) -> RPCResponse:
        """The head, or a pending transaction count (the floor of our next nonce): asked of
        every healthy provider, the highest answer wins (one behind, or without our transaction
        in its mempool, answers less)."""
        up = set(self._up())
        healthy = [url for url in order if url in up] or order[:1]
        answers: list[RPCResponse] = []
        last: BaseException | None = None
        for url in healthy:
            try:
                answers.append(self.call_one(url, method, params))
            except (RequestException, OSError, ValueError) as error:
                last = error
        counted = [answer for answer in answers if isinstance(answer.get("result"), str)]
        if counted:
            return max(counted, key=lambda answer: int(answer["result"], 16))
        if answers:
            return answers[0]  # a JSON-RPC error: web3 raises it
        for url in (url for url in order if url not in healthy):  # the others, in turn
            try:
                return self.call_one(url, method, params)
            except (RequestException, OSError, ValueError) as error:
                last = error
        assert last is not None  # noqa: S101 - order is never empty
        raise last

    def _up(self) -> list[str]:
        now, behind = time.monotonic(), lagging(self.caip2, self.urls)
        return [
            url
            for url in self.urls
            if health(self.caip2, url).down_until <= now and url not in behind
        ]

    def _has_block(self, url: str, number: int) -> bool:
        known = health(self.caip2, url).head
        if known is not None and known >= number:
            return True
        return (self.head_of(url, max_age=0) or -1) >= number

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if len(self.urls) == 1:
            return self.call_one(self.urls[0], method, params)
        highest = method == "eth_blockNumber" or (
            method == "eth_getTransactionCount" and params and params[-1] == "pending"
        )
        if not highest:  # (asking for the highest head refreshes every head anyway)
            for url in self.urls:  # refresh stale heads, so that lagging providers are known
                self.head_of(url, max_age=settings.CHAIN_RPC_HEAD_MAX_AGE_SECONDS)
        order = ranked(self.caip2, self.urls)
        if highest:
            return self._highest(order, method, params)
        needed = _block_asked(method, params)
        if needed is not None:
            order = [url for url in order if self._has_block(url, needed)]
            if not order:
                raise ProvidersBehind(
                    f"No RPC provider of {self.caip2} has reached block {needed} yet."
                )
        last: BaseException | None = None
        for url in order:
            try:
                return self.call_one(url, method, params)
            except (RequestException, OSError, ValueError) as error:
                last = error
        assert last is not None  # noqa: S101 - order is never empty
        raise last
