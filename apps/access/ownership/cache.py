"""The ownership answer cache: answers per (chain, contract, account), with a positive and a
negative TTL.

One cache entry per (chain, contract, account): {"g": generation, <question>: [held, expires]}.
A decision reads every entry it needs in one round trip (cache.get_many). A fetch notes the
generation before asking the node and stores its answer only if the entry still has it; the
indexer's transfer hook deletes the entry, so that the next question starts afresh and an answer
fetched across a transfer is dropped.

With the cache away, questions go to the chains and answers are not kept (degraded, not 503).
"""

import hashlib
import secrets
import time

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches

from apps.access.gates import Condition, Wallet
from apps.access.ownership.answers import Answer, accounts_for
from streamgate.outages import CACHE, outage_of, outage_recorded


def _entry_key(chain: str, contract: str, account: str) -> str:
    if chain.startswith("eip155:"):  # EVM addresses are case-insensitive; base58 is not
        contract, account = contract.lower(), account.lower()
    return f"own:v2:{chain}:{contract}:{account}"


def _question(condition: Condition) -> str:
    # For the market's conditions, token_ids holds the content: one entry per (chain, registry,
    # account) answers every content, and a purchase event forgets them all at once.
    text = f"{condition.kind}|{','.join(condition.token_ids)}|{condition.min_balance}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _entry_ttl() -> int:
    """An entry outlives its longest answer (and any fetch in flight)."""
    return max(settings.GATE_CACHE_POSITIVE_TTL, settings.GATE_CACHE_NEGATIVE_TTL, 60)


def _found(entry: dict | None, question: str, now: float) -> list | None:
    """The fresh cached answer: [held, expires] or, for a timed "holds", [held, expires, until]."""
    found = entry.get(question) if entry else None
    return found if found and found[1] > now else None


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
        found = [
            _found(entries.get(_entry_key(condition.chain, condition.contract, a)), question, now)
            for a in accounts
        ]
        values = [answer[0] if answer else None for answer in found]
        if any(value is True for value in values):
            ends = [answer[2] for answer in found if answer and answer[0] and len(answer) > 2]
            result[condition] = Answer(True, "cache", until=max(ends) if ends else None)
        elif all(value is False for value in values):
            result[condition] = Answer(False, "cache")
        else:
            result[condition] = Answer(None, "cache", "not cached")
    return result


def generations_for(condition: Condition, accounts: list[str]) -> dict[str, str | None]:
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


def answers_store(
    condition: Condition,
    generations: dict[str, str | None],
    held: dict[str, bool],
    *,
    lasts: dict[str, float] | None = None,
) -> None:
    """Keep each account's answer, unless its entry lost the generation read before the fetch
    (an invalidation came between); with the cache away, nothing is kept. ``lasts``: seconds a
    "holds" answer stays true (a rental's end): it is kept no longer than that."""
    positive, negative = settings.GATE_CACHE_POSITIVE_TTL, settings.GATE_CACHE_NEGATIVE_TTL
    question = _question(condition)
    lasts = lasts or {}
    for account, value in held.items():
        generation = generations.get(account)
        if generation:
            ttl = positive if value else negative
            now = time.time()
            answer = [value, now + ttl]
            if value and account in lasts:
                answer = [value, now + min(ttl, lasts[account]), now + lasts[account]]
            try:
                _entry_update(
                    _entry_key(condition.chain, condition.contract, account),
                    generation,
                    question,
                    answer,
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
