"""Ownership answers: does one of a viewer's wallets hold what a gate condition asks?

The boundary to chains: EVM contracts through web3 (``balanceOf`` / ``ownerOf`` /
``balanceOfBatch``) and Solana through the JSON-RPC client (token accounts of both token programs,
then the Metaplex metadata of each NFT mint). Answers are cached per (chain, contract, account)
with a positive and a negative TTL, in one cache entry per (chain, contract, account) that the
indexer's transfer hook deletes, so that the next question starts afresh and a fetch that raced
the transfer is not stored.

With the cache away, questions go to the chains and answers are not kept (degraded, not 503).
Nothing here answers "held" unless a node said so: a failed or slow call is an unknown answer,
which the gate evaluation turns into a 503, never into a yes.
"""

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from eth_utils import to_checksum_address

from apps.access.gates import Condition, Wallet
from apps.chain.chains import ChainNotConfigured, rpc_url, web3_for
from streamgate.metrics import RPC_SECONDS
from streamgate.outages import CACHE, outage_of, outage_recorded

logger = logging.getLogger(__name__)

ERC721_ABI = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "ownerOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "tokenId", "type": "uint256"}],
        "outputs": [{"name": "", "type": "address"}],
    },
]
ERC1155_ABI = [
    {
        "name": "balanceOfBatch",
        "type": "function",
        "stateMutability": "view",
        "inputs": [
            {"name": "accounts", "type": "address[]"},
            {"name": "ids", "type": "uint256[]"},
        ],
        "outputs": [{"name": "", "type": "uint256[]"}],
    },
]
SOLANA_BATCH = 100  # getMultipleAccounts takes at most 100 keys


@dataclass(frozen=True)
class Answer:
    """Whether any of the viewer's wallets holds what a condition asks (None: unknown)."""

    held: bool | None
    source: str  # cache | rpc | wallets | error
    note: str = ""


class OwnershipUnavailable(Exception):
    """The chain's node did not answer (timeout, error, no RPC configured)."""


def accounts_for(condition: Condition, wallets: list[Wallet]) -> list[str]:
    """The addresses of ``wallets`` that speak for the viewer on the condition's chain."""
    return sorted({wallet.address for wallet in wallets if wallet.holds_on(condition.chain)})


# --- the cache ---------------------------------------------------------------------------------
# One cache entry per (chain, contract, account): {"g": generation, <question>: [held, expires]}.
# A decision reads every entry it needs in one round trip (cache.get_many). A fetch notes the
# generation before asking the node and stores its answer only if the entry still has it; the
# indexer's transfer hook deletes the entry, so an answer fetched across a transfer is dropped.


def _entry_key(chain: str, contract: str, account: str) -> str:
    if chain.startswith("eip155:"):  # EVM addresses are case-insensitive; base58 is not
        contract, account = contract.lower(), account.lower()
    return f"own:v2:{chain}:{contract}:{account}"


def _question(condition: Condition) -> str:
    text = f"{condition.kind}|{','.join(condition.token_ids)}|{condition.min_balance}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _entry_ttl() -> int:
    """An entry outlives its longest answer (and any fetch in flight)."""
    return max(settings.GATE_CACHE_POSITIVE_TTL, settings.GATE_CACHE_NEGATIVE_TTL, 60)


def _fresh(entry: dict | None, question: str, now: float) -> bool | None:
    found = entry.get(question) if entry else None
    return found[0] if found and found[1] > now else None


def answers_cached(conditions: list[Condition], wallets: list[Wallet]) -> dict[Condition, Answer]:
    """What the cache knows, in one cache round trip for the whole gate: held if any account
    is cached as holding, not held only if every account is cached as not holding."""
    wanted = {c: accounts_for(c, wallets) for c in conditions}
    keys = {_entry_key(c.chain, c.contract, a) for c, accounts in wanted.items() for a in accounts}
    try:
        entries = cache.get_many(list(keys)) if keys else {}
    except Exception as error:
        if outage_of(error) != CACHE:
            raise
        # The cache is an accelerator: with it away, every question goes to its chain.
        outage_recorded(CACHE, error, action="degraded", use="ownership")
        entries = {}
    now = time.time()
    result: dict[Condition, Answer] = {}
    for condition, accounts in wanted.items():
        if not accounts:
            result[condition] = Answer(False, "wallets", "no wallet on this chain")
            continue
        question = _question(condition)
        values = [
            _fresh(entries.get(_entry_key(condition.chain, condition.contract, a)), question, now)
            for a in accounts
        ]
        if any(value is True for value in values):
            result[condition] = Answer(True, "cache")
        elif all(value is False for value in values):
            result[condition] = Answer(False, "cache")
        else:
            result[condition] = Answer(None, "cache", "not cached")
    return result


def _generations_for(condition: Condition, accounts: list[str]) -> dict[str, str | None]:
    """Each account's entry generation, the entry created where missing (read before asking
    the node, so that an answer fetched across an invalidation is not stored). None for all
    when the cache is away: the answer is then used once and not stored."""
    keys = {a: _entry_key(condition.chain, condition.contract, a) for a in accounts}
    generations: dict[str, str | None] = {}
    try:
        found = cache.get_many(list(keys.values()))
        for account, key in keys.items():
            entry = found.get(key)
            if entry is None:
                cache.add(key, {"g": secrets.token_hex(8)}, timeout=_entry_ttl())
                entry = cache.get(key)
            generations[account] = entry.get("g") if entry else None
    except Exception as error:
        if outage_of(error) != CACHE:
            raise
        return dict.fromkeys(accounts)
    return generations


def _store(condition: Condition, generations: dict[str, str | None], held: dict[str, bool]) -> None:
    positive, negative = settings.GATE_CACHE_POSITIVE_TTL, settings.GATE_CACHE_NEGATIVE_TTL
    question = _question(condition)
    for account, value in held.items():
        generation = generations.get(account)
        if generation:
            expires = time.time() + (positive if value else negative)
            try:
                _entry_update(
                    _entry_key(condition.chain, condition.contract, account),
                    generation,
                    question,
                    [value, expires],
                )
            except Exception as error:
                if outage_of(error) != CACHE:
                    raise
                return  # not kept: asked again next time


def _entry_update(key: str, generation: str, question: str, answer: list) -> None:
    """Add ``answer`` to the entry if it still has ``generation``; with Redis atomically
    (WATCH/MULTI: an invalidation between the read and the write makes the write fail)."""

    def updated(entry: dict | None) -> dict | None:
        if not entry or entry.get("g") != generation:
            return None  # invalidated (or expired) since the fetch began: drop the answer
        now = time.time()
        kept = {q: a for q, a in entry.items() if q == "g" or a[1] > now}
        kept[question] = answer
        return kept

    backend = caches[DEFAULT_CACHE_ALIAS]
    if not _is_django_redis(backend):
        # The embedded file cache has no compare-and-set: the window between this read and the
        # write is a few microseconds wide (one machine, laptop mode).
        entry = updated(backend.get(key))
        if entry is not None:
            backend.set(key, entry, timeout=_entry_ttl())
        return
    from redis.exceptions import WatchError

    client = backend.client
    raw_key = client.make_key(key)
    with client.get_client(write=True).pipeline() as pipe:
        try:
            pipe.watch(raw_key)
            raw = pipe.get(raw_key)
            entry = updated(client.decode(raw) if raw is not None else None)
            if entry is None:
                return
            pipe.multi()
            pipe.set(raw_key, client.encode(entry), ex=_entry_ttl())
            pipe.execute()
        except WatchError:
            pass  # changed under us: invalidated, or another answer stored; ask again next time


def _is_django_redis(backend) -> bool:
    try:
        from django_redis.cache import RedisCache
    except ImportError:
        return False
    return isinstance(backend, RedisCache)


def ownership_invalidate(*, chain: str, contract: str, accounts: list[str]) -> None:
    """Forget every cached answer about ``accounts`` and ``contract`` (a transfer moved them)."""
    cache.delete_many([_entry_key(chain, contract, account) for account in accounts])


# --- asking the chains -------------------------------------------------------------------------


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
    generations = _generations_for(condition, accounts)
    started = time.perf_counter()
    try:
        if condition.kind == "metaplex":
            held = asyncio.run(_metaplex_held(condition, accounts))
        else:
            held = _evm_held(condition, accounts)
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
    _store(condition, generations, held)
    return Answer(any(held.values()), "rpc")


def _reverts() -> tuple[type[Exception], ...]:
    """What a reverted call raises: web3's error for nodes, eth-tester's for its in-process
    chain (which web3 passes through as is)."""
    from web3.exceptions import ContractLogicError

    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # eth-tester is a development dependency
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


def _evm_held(condition: Condition, accounts: list[str]) -> dict[str, bool]:
    from web3.exceptions import BadFunctionCallOutput

    web3 = web3_for(condition.chain, timeout=settings.GATE_RPC_TIMEOUT, retries=False)
    checksummed = [to_checksum_address(a) for a in accounts]
    if condition.kind == "erc1155":
        contract = web3.eth.contract(address=condition.contract, abi=ERC1155_ABI)
        ids = [int(token_id) for token_id in condition.token_ids]
        owners = [a for a in checksummed for _ in ids]
        try:
            balances = contract.functions.balanceOfBatch(owners, ids * len(checksummed)).call()
        except BadFunctionCallOutput:  # no contract there (nobody holds it) or a bad node
            _no_contract(web3, condition)
            return dict.fromkeys(accounts, False)
        per_account = [balances[i * len(ids) : (i + 1) * len(ids)] for i in range(len(accounts))]
        return {
            account: any(balance >= condition.min_balance for balance in found)
            for account, found in zip(accounts, per_account, strict=True)
        }
    contract = web3.eth.contract(address=condition.contract, abi=ERC721_ABI)
    if not condition.token_ids:
        held = {}
        for account, address in zip(accounts, checksummed, strict=True):
            try:
                held[account] = contract.functions.balanceOf(address).call() > 0
            except BadFunctionCallOutput:
                _no_contract(web3, condition)
                held[account] = False
        return held
    owners = set()
    for token_id in condition.token_ids:
        try:
            owners.add(contract.functions.ownerOf(int(token_id)).call().lower())
        except _reverts():  # no such token
            continue
        except BadFunctionCallOutput:
            _no_contract(web3, condition)
            continue
    return {account: account.lower() in owners for account in accounts}


def _no_contract(web3, condition: Condition) -> None:
    """Called when a call's answer could not be decoded: fine (nobody holds anything) if no
    contract is deployed at the address; otherwise the node answered garbage (an unsynced or
    broken node returns empty data), which must stay an unknown answer, never a "no" that a
    ``not`` rule would turn into a yes."""
    if web3.eth.get_code(condition.contract):
        raise OwnershipUnavailable(f"{condition.chain} returned undecodable data")


async def _metaplex_held(condition: Condition, accounts: list[str]) -> dict[str, bool]:
    """For each owner: an NFT (amount 1, decimals 0) of the Token or Token-2022 program whose
    Metaplex metadata (owned by the metadata program, at the mint's PDA) names the collection
    as verified."""
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.models import TokenAccountOpts
    from solders.pubkey import Pubkey

    # Imported here, not at the top: the Solana libraries load only in a process that checks a
    # Metaplex gate (the solana/solders imports above, and metaplex.py's own).
    from apps.access.metaplex import (
        METADATA_PROGRAM,
        TOKEN_2022_PROGRAM,
        TOKEN_PROGRAM,
        MetadataInvalid,
        metadata_address,
        metadata_parse,
    )

    collection = Pubkey.from_string(condition.contract)
    held = dict.fromkeys(accounts, False)
    async with AsyncClient(
        rpc_url(condition.chain), timeout=settings.GATE_RPC_TIMEOUT, max_transport_retries=0
    ) as client:
        for account in accounts:
            owner = Pubkey.from_string(account)
            mints: list[Pubkey] = []
            for program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
                response = _checked(
                    await client.get_token_accounts_by_owner_json_parsed(
                        owner, TokenAccountOpts(program_id=program)
                    )
                )
                for keyed in response.value:
                    info = keyed.account.data.parsed["info"]
                    amount = info["tokenAmount"]
                    if amount["amount"] == "1" and amount["decimals"] == 0:
                        mints.append(Pubkey.from_string(info["mint"]))
            for start in range(0, len(mints), SOLANA_BATCH):
                batch = mints[start : start + SOLANA_BATCH]
                response = _checked(
                    await client.get_multiple_accounts([metadata_address(mint) for mint in batch])
                )
                for mint, found in zip(batch, response.value, strict=True):
                    if found is None or found.owner != METADATA_PROGRAM:
                        continue  # no metadata, or an account someone else's program wrote
                    try:
                        metadata = metadata_parse(found.data)
                    except MetadataInvalid:
                        continue
                    if (
                        metadata.mint == mint
                        and metadata.collection == collection
                        and metadata.collection_verified
                    ):
                        held[account] = True
                        break
                if held[account]:
                    break
    return held


def _checked(response):
    """solana-py returns (rather than raises) JSON-RPC errors whose code solders does not know,
    as a bare int."""
    if isinstance(response, int):
        raise OwnershipUnavailable(f"the node answered JSON-RPC error {response}")
    return response
