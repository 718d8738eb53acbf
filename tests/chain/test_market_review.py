"""Review of the access market on py-evm: what the API shows must be what the chain sells,
a purchase's status speaks only of the caller's purchase of this content, and bad input or a
chain without RPC is a 4xx, never a 500."""

import pytest
from eth_account import Account

from apps.chain.services import content_id_bytes32
from tests.chain.test_market import OTHER_KEY, Market, offer, relay
from tests.factories import UserFactory, WalletFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(tester_chain, deployed, client_for, media_root, django_capture_on_commit_callbacks):
    return Market(
        tester_chain, deployed, client_for, media_root, django_capture_on_commit_callbacks
    )


def _shown(market, content) -> list[dict]:
    return market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]


def test_two_signed_sets_with_one_nonce_show_what_the_chain_sells(market):
    """A creator who signs again while the first set is still being relayed signs the same
    nonce: only one set can land, and the API must show that one, not the other."""
    from apps.chain.models import Offer

    content = market.content()
    rental = offer(market, kind="rental", amount="100", period_seconds=60)
    _, first, first_queued = market.put_offers(content, [rental])
    forever = offer(market, amount="100")  # same price, bought for ever
    _, second, second_queued = market.put_offers(content, [forever])
    assert (first.status_code, second.status_code) == (200, 200)
    relay(first_queued)  # the chain now sells the 60-second rental
    relay(second_queued)  # refused on chain: its nonce is used
    key = content_id_bytes32(content.id)
    for shown in _shown(market, content):
        onchain = market.registry.functions.offerOf(
            key, int(Offer.objects.get(pk=shown["id"]).onchain_id)
        ).call()
        token, period, kind, amount = onchain
        assert (shown["period_seconds"], shown["amount"]) == (period, str(amount)), (
            f"the API shows {shown['kind']} for {shown['period_seconds']} s; the chain sells "
            f"{period} s"
        )
        assert shown["kind"] == ("rental" if period else "purchase")


def test_purchase_status_speaks_only_of_the_callers_purchase_of_this_content(market):
    first = market.content()
    second = market.content()
    (native,) = market.publish(first, [offer(market)])
    market.publish(second, [offer(market)])
    (receipt,) = market.buy(first, native["id"])
    market.index()
    tx = receipt["transactionHash"].to_0x_hex()

    # The buyer asking about another content: that transaction opens nothing there.
    elsewhere = market.client_for(market.viewer).get(
        f"/api/v1/contents/{second.id}/purchase/?tx={tx}"
    )
    assert elsewhere.json()["playable"] is False, elsewhere.json()
    assert elsewhere.json()["state"] != "indexed"
    assert market.play(second).status_code == 403

    # Someone else asking about the buyer's transaction: not playable for them.
    stranger = UserFactory()
    WalletFactory(user=stranger, address=Account.from_key(OTHER_KEY).address)
    theirs = market.client_for(stranger).get(f"/api/v1/contents/{first.id}/purchase/?tx={tx}")
    assert theirs.json()["playable"] is False, theirs.json()
    assert market.play(first, user=stranger).status_code == 403
    # ... and for the buyer it is.
    mine = market.client_for(market.viewer).get(f"/api/v1/contents/{first.id}/purchase/?tx={tx}")
    assert (mine.json()["state"], mine.json()["playable"]) == ("indexed", True)


@pytest.mark.parametrize(
    "body",
    [
        {"offers": [{"chain": ["eip155:1"], "kind": "purchase", "amount": "1"}]},
        {"offers": [], "chain": {"id": 1}},
        {"offers": [], "chain": ["eip155:1"]},
        "huge amount",
    ],
)
def test_bad_offers_bodies_are_400s(market, body):
    content = market.content()
    if body == "huge amount":
        body = {"offers": [offer(market, amount="9" * 5000)]}
    answer = market.client_for(market.creator).put(
        f"/api/v1/contents/{content.id}/offers/", body, format="json"
    )
    assert (answer.status_code, answer.json()["reason"]) == (400, "offers")


@pytest.mark.parametrize("deadline", [2**256, -1])
def test_a_permit_deadline_out_of_range_is_a_400(market, deadline):
    content = market.content()
    (permit,) = market.publish(content, [offer(market, currency=market.token.address)])
    answer = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/",
        {
            "offer": permit["id"],
            "permit": True,
            "signature": "0x" + "11" * 65,
            "deadline": deadline,
        },
        format="json",
    )
    assert (answer.status_code, answer.json()["reason"]) == (400, "deadline")


@pytest.mark.parametrize("tx", ["0x" + "zz" * 32, "0x" + " " * 64, "0x" + "-1" * 32])
def test_a_transaction_hash_that_is_not_hex_is_a_400(market, tx):
    content = market.content()
    answer = market.client_for(market.viewer).get(
        f"/api/v1/contents/{content.id}/purchase/", {"tx": tx}
    )
    assert (answer.status_code, answer.json()["reason"]) == (400, "tx")


def test_a_chain_without_rpc_is_a_409_not_a_500(market, settings):
    content = market.content()
    settings.CHAIN_RPC_URLS = {}  # registered there, but this server can no longer reach it
    creator = market.client_for(market.creator)
    offers = creator.put(
        f"/api/v1/contents/{content.id}/offers/", {"offers": [offer(market)]}, format="json"
    )
    assert (offers.status_code, offers.json()["reason"]) == (409, "chain_not_configured")
    withdraw = creator.post(
        "/api/v1/sales/withdraw/", {"chain": market.caip2, "currency": None}, format="json"
    )
    assert (withdraw.status_code, withdraw.json()["reason"]) == (409, "chain_not_configured")
    payout = creator.put(
        "/api/v1/sales/payout/",
        {"chain": market.caip2, "payout": Account.from_key(OTHER_KEY).address},
        format="json",
    )
    assert (payout.status_code, payout.json()["reason"]) == (409, "chain_not_configured")
    status = market.client_for(market.viewer).get(
        f"/api/v1/contents/{content.id}/purchase/?tx=0x" + "ab" * 32
    )
    assert status.status_code == 200
    assert status.json()["state"] == "pending"


def test_two_signed_payouts_with_one_nonce_only_the_landed_one_is_live(market):
    from apps.chain.models import PayoutChange
    from apps.chain.payouts import payout_track
    from apps.chain.tasks import chain_payout_relay
    from apps.chain.typed_data import typed_data_sign
    from tests.chain.test_market import CREATOR_KEY, VIEWER_KEY

    market.content()
    api = market.client_for(market.creator)
    queued_ids = []
    for key in (OTHER_KEY, VIEWER_KEY):  # signed again before the first was relayed
        body = {"chain": market.caip2, "payout": Account.from_key(key).address}
        typed = api.put("/api/v1/sales/payout/", body, format="json").json()["typed_data"]
        signature = "0x" + typed_data_sign(typed, CREATOR_KEY).hex()
        with market.callbacks() as queued:
            signed = api.put(
                "/api/v1/sales/payout/", {**body, "signature": signature}, format="json"
            )
        assert signed.status_code == 200, signed.json()
        queued_ids += [c.args[0] for c in queued if getattr(c, "task", None) is chain_payout_relay]
    for change_id in queued_ids:
        chain_payout_relay.run(change_id)
        assert payout_track(change_id=change_id) is True
    onchain = market.registry.functions.payoutOf(market.creator_address).call()
    assert onchain == Account.from_key(OTHER_KEY).address
    live = list(PayoutChange.objects.filter(status="live").values_list("payout", flat=True))
    assert live == [onchain]


def test_a_rentals_stream_urls_do_not_outlive_the_rental(market):
    from datetime import datetime

    content = market.content()
    (rental,) = market.publish(content, [offer(market, kind="rental", period_seconds=600)])
    market.buy(content, rental["id"])
    market.index()
    played = market.play(content)
    assert played.status_code == 200
    ends, _, _ = market.registry.functions.accessUntil(
        content_id_bytes32(content.id), market.viewer_address
    ).call()
    expires = datetime.fromisoformat(played.json()["expires_at"].replace("Z", "+00:00"))
    assert ends - 30 <= expires.timestamp() <= ends  # the chain clock runs a little ahead
    again = market.play(content)  # answered from the cache, which keeps the rental's end
    expires = datetime.fromisoformat(again.json()["expires_at"].replace("Z", "+00:00"))
    assert ends - 30 <= expires.timestamp() <= ends  # the chain clock runs a little ahead


def test_a_purchase_for_ever_keeps_the_usual_url_lifetime(market, settings):
    import time
    from datetime import datetime

    content = market.content()
    (forever,) = market.publish(content, [offer(market)])
    market.buy(content, forever["id"])
    market.index()
    played = market.play(content)
    expires = datetime.fromisoformat(played.json()["expires_at"].replace("Z", "+00:00"))
    assert expires.timestamp() >= time.time() + settings.PLAYBACK_TOKEN_TTL - 5
