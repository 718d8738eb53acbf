"""Asking a condition's chain: the EVM, market or Solana check, timed, its answer cached per
account.

A node that fails or is slow, or answers what cannot be decoded, gives an unknown answer, never a
yes; the gate evaluation turns it into a 503.
"""

import asyncio
import logging
import time

from apps.access.gates import MARKET, Condition, Wallet
from apps.access.ownership.answers import Answer, accounts_for
from apps.access.ownership.cache import answers_store, generations_for
from apps.access.ownership.evm import evm_held
from apps.access.ownership.market import market_held
from apps.access.ownership.solana import metaplex_held
from apps.chain.chains import ChainNotConfigured, rpc_url
from streamgate.metrics import RPC_SECONDS
from streamgate.tracing import span

logger = logging.getLogger(__name__)


def answer_fetch(condition: Condition, wallets: list[Wallet]) -> Answer:
    """Ask the condition's chain, cache the answer per account, and return it; a node that
    fails or is slow gives ``Answer(None, "error", why)``."""
    accounts = accounts_for(condition, wallets)
    if not accounts:
        return Answer(False, "wallets", "no wallet on this chain")
    try:
        rpc_url(condition.chain)
    except ChainNotConfigured:
        return Answer(None, "error", f"no RPC endpoint for {condition.chain}")
    generations = generations_for(condition, accounts)
    attributes = {
        "streamgate.chain": condition.chain,
        "streamgate.condition": condition.kind,
        "streamgate.contract": condition.contract,
    }
    with span("chain.check", attributes) as traced:
        answer = _held_ask(condition, accounts, generations)
        if traced is not None:
            traced.set_attribute("streamgate.answer", str(answer.held).lower())
    return answer


def _held_ask(
    condition: Condition, accounts: list[str], generations: dict[str, str | None]
) -> Answer:
    started = time.perf_counter()
    try:
        lasts: dict[str, float] = {}
        if condition.kind == "metaplex":
            held = asyncio.run(metaplex_held(condition, accounts))
        elif condition.kind in MARKET:
            timed = market_held(condition, accounts)
            held = {account: answer[0] for account, answer in timed.items()}
            lasts = {account: answer[1] for account, answer in timed.items() if answer[0]}
        else:
            held = evm_held(condition, accounts)
    except BaseException as error:  # any failure of the node is an unknown answer, never a yes
        # BaseException: solders panics (pyo3's PanicException) on some malformed node answers.
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        RPC_SECONDS.labels(chain=condition.chain, outcome="error").observe(
            time.perf_counter() - started
        )
        logger.warning(
            "ownership check failed",
            extra={"chain": condition.chain, "contract": condition.contract, "error": repr(error)},
        )
        return Answer(None, "error", f"{condition.chain} did not answer ({type(error).__name__})")
    RPC_SECONDS.labels(chain=condition.chain, outcome="ok").observe(time.perf_counter() - started)
    answers_store(condition, generations, held, lasts=lasts)
    until = time.time() + max(lasts.values()) if lasts else None
    return Answer(any(held.values()), "rpc", until=until)
