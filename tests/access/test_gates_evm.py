"""Gate decisions against real contracts on py-evm: every kind and combinator, the cache, and
the indexer's transfer hook that flips a cached answer at once."""

import time

import pytest
from django.core.cache import cache

from apps.access.gates import Wallet, gate_conditions, gate_validate
from apps.access.ownership.answers import Answer
from apps.access.ownership.cache import (
    answers_cached,
    answers_store,
    generations_for,
    ownership_invalidate,
)
from apps.access.playback import access_decide, gate_evaluate
from apps.access.selectors import viewer_wallets
from apps.chain.indexer import index_chain
from apps.content.models import ContentStatus
from tests.factories import ContentFactory, UserFactory, WalletFactory
from tests.support.evm import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def holders(tester_chain, deployed):
    """owner mints: holder has ERC-721 #1 and 3 of ERC-1155 #7; other has nothing."""
    owner, holder, other = tester_chain.accounts[:3]
    send(deployed.nft721.functions.mint(holder), owner)
    send(deployed.nft1155.functions.mint(holder, 7, 3), owner)
    return holder, other


def viewer(address: str, **wallet):
    user = UserFactory()
    WalletFactory(user=user, address=address, **wallet)
    return user


def erc721(deployed, chain, token_id=None):
    return {"erc721": {"chain": chain, "contract": deployed.nft721.address, "token_id": token_id}}


def erc1155(deployed, chain, ids="7", min_balance="1"):
    return {
        "erc1155": {
            "chain": chain,
            "contract": deployed.nft1155.address,
            "token_id": ids,
            "min_balance": min_balance,
        }
    }


def decide(user, gate):
    content = ContentFactory(status=ContentStatus.READY, gate=gate)
    return access_decide(user=user, content=content)


def test_each_condition_allows_holders_and_denies_others(tester_chain, deployed, holders):
    holder, other = holders
    chain = tester_chain.caip2
    cases = [
        (erc721(deployed, chain), True, False),
        (erc721(deployed, chain, "1"), True, False),
        (erc721(deployed, chain, ["2", "1"]), True, False),
        (erc721(deployed, chain, "2"), False, False),  # token 2 does not exist
        (erc1155(deployed, chain, "7", "3"), True, False),
        (erc1155(deployed, chain, "7", "4"), False, False),
        (erc1155(deployed, chain, ["8", "7"], "2"), True, False),
        ({"allowlist": {"accounts": [f"eip155:1:{holder}"]}}, True, False),
    ]
    holder_user, other_user = viewer(holder), viewer(other)
    for gate, holder_allowed, other_allowed in cases:
        assert decide(holder_user, gate).allowed is holder_allowed, gate
        denied = decide(other_user, gate)
        assert denied.allowed is other_allowed, gate
        assert denied.reason == "gate_denied"


def test_combinators(tester_chain, deployed, holders):
    holder, other = holders
    chain = tester_chain.caip2
    has_721, has_1155 = erc721(deployed, chain), erc1155(deployed, chain)
    lacks = erc721(deployed, chain, "99")
    user = viewer(holder)
    assert decide(user, {"any": [lacks, has_1155]}).allowed is True
    assert decide(user, {"any": [lacks, {"not": has_721}]}).allowed is False
    assert decide(user, {"all": [has_721, has_1155]}).allowed is True
    assert decide(user, {"all": [has_721, lacks]}).allowed is False
    assert decide(user, {"not": lacks}).allowed is True
    assert decide(user, {"not": has_721}).allowed is False
    assert decide(user, {"at_least": {"count": 2, "of": [lacks, has_721, has_1155]}}).allowed
    assert not decide(user, {"at_least": {"count": 3, "of": [lacks, has_721, has_1155]}}).allowed
    # The other account meets only a "not".
    assert decide(viewer(other), {"all": [{"not": has_721}, {"not": has_1155}]}).allowed is True


def test_a_denial_says_what_is_missing(tester_chain, deployed, holders):
    _, other = holders
    decision = decide(viewer(other), erc721(deployed, tester_chain.caip2))
    assert decision.reason == "gate_denied"
    assert deployed.nft721.address in decision.detail
    assert "not held" in decision.detail


def test_users_without_wallets_and_anonymous_callers(tester_chain, deployed):
    from django.contrib.auth.models import AnonymousUser

    gate = erc721(deployed, tester_chain.caip2)
    assert decide(UserFactory(), gate).reason == "no_wallet"
    assert decide(AnonymousUser(), gate).reason == "sign_in_required"
    owner_content = ContentFactory(status=ContentStatus.READY, gate=gate)
    assert access_decide(user=owner_content.owner, content=owner_content).reason == "owner"


def test_any_of_several_wallets_counts(tester_chain, deployed, holders):
    holder, other = holders
    user = viewer(other)
    WalletFactory(user=user, address=holder)
    assert decide(user, erc721(deployed, tester_chain.caip2)).allowed is True


def test_a_contract_wallet_counts_only_on_its_chain(tester_chain, deployed, holders):
    holder, _ = holders
    elsewhere = viewer(holder, kind="contract", chain="eip155:1")
    assert decide(elsewhere, erc721(deployed, tester_chain.caip2)).reason == "gate_denied"
    here = viewer(holder, kind="contract", chain=tester_chain.caip2, address_key="x")
    assert decide(here, erc721(deployed, tester_chain.caip2)).allowed is True


def test_answers_are_cached_and_decided_from_the_cache(tester_chain, deployed, holders):
    holder, _ = holders
    gate = {"any": [erc721(deployed, tester_chain.caip2), erc1155(deployed, tester_chain.caip2)]}
    wallets = viewer_wallets(viewer(holder))
    first = gate_evaluate(gate=gate, wallets=wallets)
    assert first.result is True
    assert {a.source for a in first.answers.values()} >= {"rpc"}
    second = gate_evaluate(gate=gate, wallets=wallets)
    assert second.result is True
    assert {a.source for a in second.answers.values()} == {"cache"}


def test_negative_answers_expire_sooner(tester_chain, deployed, holders, settings, time_machine):
    _, other = holders
    gate = erc721(deployed, tester_chain.caip2)
    wallets = viewer_wallets(viewer(other))
    first = gate_evaluate(gate=gate, wallets=wallets)
    assert (first.result, sources(first)) == (False, {"rpc"})
    again = gate_evaluate(gate=gate, wallets=wallets)
    assert (again.result, sources(again)) == (False, {"cache"})
    assert settings.GATE_CACHE_NEGATIVE_TTL < settings.GATE_CACHE_POSITIVE_TTL
    # Past the negative TTL, well within the positive one (and the backend's own expiry).
    time_machine.move_to(time.time() + settings.GATE_CACHE_NEGATIVE_TTL + 1)
    later = gate_evaluate(gate=gate, wallets=wallets)
    assert (later.result, sources(later)) == (False, {"rpc"})


def sources(evaluation) -> set[str]:
    return {answer.source for answer in evaluation.answers.values()}


@pytest.fixture(params=["redis", "locmem"])
def any_cache(request, settings):
    """The Redis cache of the test settings (atomic WATCH/MULTI writes), or Django's
    local-memory cache (the read-compare-write path that the embedded file cache takes)."""
    if request.param == "locmem":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    yield request.param
    cache.clear() if request.param == "locmem" else cache.delete_pattern("own:*")


def test_an_answer_fetched_across_a_transfer_is_not_stored(
    tester_chain, deployed, holders, any_cache
):
    holder, _ = holders
    gate = gate_validate(erc721(deployed, tester_chain.caip2))
    (condition,) = gate_conditions(gate)
    wallets = [Wallet("eip155", holder)]
    # A fetch notes the generation, the node answers "held", then stores it: cached.
    generations = generations_for(condition, [holder])
    answers_store(condition, generations, {holder: True})
    assert answers_cached([condition], wallets)[condition] == Answer(True, "cache")
    # The same, but the indexer saw a transfer while the node was being asked: dropped.
    ownership_invalidate(chain=condition.chain, contract=condition.contract, accounts=[holder])
    generations = generations_for(condition, [holder])
    ownership_invalidate(chain=condition.chain, contract=condition.contract, accounts=[holder])
    answers_store(condition, generations, {holder: True})
    assert answers_cached([condition], wallets)[condition].held is None
    # And a decision then asks the chain again.
    evaluation = gate_evaluate(gate=gate, wallets=wallets)
    assert (evaluation.result, sources(evaluation)) == (True, {"rpc"})
    assert sources(gate_evaluate(gate=gate, wallets=wallets)) == {"cache"}


def test_a_cached_decision_takes_one_cache_round_trip(tester_chain, deployed, holders):
    holder, _ = holders
    chain = tester_chain.caip2
    gate = gate_validate({"all": [erc721(deployed, chain), erc1155(deployed, chain)]})
    wallets = [Wallet("eip155", holder), Wallet("eip155", tester_chain.accounts[5])]
    assert gate_evaluate(gate=gate, wallets=wallets).result is True
    commands = []
    client = cache.client.get_client()
    original = client.execute_command

    def counted(*args, **options):
        commands.append(args[0])
        return original(*args, **options)

    client.execute_command = counted
    try:
        evaluation = gate_evaluate(gate=gate, wallets=wallets)
    finally:
        del client.execute_command
    assert (evaluation.result, sources(evaluation)) == (True, {"cache"})
    assert commands == ["MGET"]


def test_an_indexed_transfer_flips_the_cached_answer(
    tester_chain, deployed, holders, django_capture_on_commit_callbacks
):
    holder, other = holders
    chain = tester_chain.caip2
    gate = erc721(deployed, chain)
    index_chain(caip2=chain)  # the indexer is up to date before the transfer
    holder_user, other_user = viewer(holder), viewer(other)
    assert decide(holder_user, gate).allowed is True
    assert decide(other_user, gate).allowed is False  # both answers are cached now

    send(deployed.nft721.functions.transferFrom(holder, other, 1), holder)
    # Until the indexer sees the transfer, the cached answers stand (within their TTLs).
    assert decide(holder_user, gate).allowed is True

    with django_capture_on_commit_callbacks(execute=True):
        index_chain(caip2=chain)
    assert decide(holder_user, gate).allowed is False
    assert decide(other_user, gate).allowed is True
