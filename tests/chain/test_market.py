"""Selling access end to end on py-evm: a creator signs offers (EIP-712) that StreamGate relays,
a viewer is told what to buy, buys with their own wallet, and plays at once; rentals end,
memberships open every content of the creator, sales and withdrawals add up."""

import json
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from eth_account import Account

from apps.chain.indexer import index_chain
from apps.chain.models import (
    ChainContract,
    ContractKind,
    Offer,
    OfferSet,
    OfferSetStatus,
    PayoutChange,
    Registration,
    RegistrationStatus,
)
from apps.chain.offers import offer_set_track
from apps.chain.payouts import payout_track
from apps.chain.services import content_id_bytes32
from apps.chain.tasks import chain_offers_relay, chain_offers_track, chain_payout_relay
from apps.chain.typed_data import typed_data_sign
from apps.content.audit import AuditEvent
from tests.access.conftest import published
from tests.factories import UserFactory, WalletFactory
from tests.support.evm import deploy_artifact, send

pytestmark = pytest.mark.django_db

# eth-tester's accounts have the private keys 1, 2, 3…: 0 is StreamGate's signer (registrar).
CREATOR_KEY = "0x" + "00" * 31 + "02"
VIEWER_KEY = "0x" + "00" * 31 + "04"
OTHER_KEY = "0x" + "00" * 31 + "05"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


class Market:
    def __init__(self, tester_chain, deployed, client_for, media_root, callbacks):
        self.chain = tester_chain
        self.caip2 = tester_chain.caip2
        self.web3 = tester_chain.web3
        self.registry = deployed.registry
        self.callbacks = callbacks
        self.client_for = client_for
        self.media_root = media_root
        self.creator_address = Account.from_key(CREATOR_KEY).address
        self.creator = UserFactory()
        WalletFactory(user=self.creator, address=self.creator_address)
        self.viewer_address = Account.from_key(VIEWER_KEY).address
        self.viewer = UserFactory()
        WalletFactory(user=self.viewer, address=self.viewer_address)
        self.token = deploy_artifact(self.web3, "TestToken", "USD Coin", "USDC", 6)
        self.plain = deploy_artifact(self.web3, "TestTokenPlain", "Plain", "PLN")
        for token in (self.token, self.plain):
            send(token.functions.mint(self.viewer_address, 10**12), self.web3.eth.accounts[0])

    def content(self, gate=None):
        gate = gate or {"purchase": {"chain": self.caip2}}
        content = published(self.media_root, gate=gate, owner=self.creator).content
        send(
            self.registry.functions.register(
                content_id_bytes32(content.id), self.creator_address, "bafkcid", 0, b"\0" * 32
            ),
            self.web3.eth.accounts[0],
        )
        Registration.objects.create(
            content=content,
            chain=self.caip2,
            contract=ChainContract.objects.get(chain=self.caip2, kind=ContractKind.REGISTRY),
            status=RegistrationStatus.CONFIRMED,
            creator=self.creator_address,
            cid="bafkcid",
        )
        return content

    def put_offers(self, content, offers, *, key=CREATOR_KEY):
        api = self.client_for(self.creator)
        url = f"/api/v1/contents/{content.id}/offers/"
        first = api.put(url, {"offers": offers}, format="json")
        assert first.status_code == 202, first.json()
        typed = first.json()["typed_data"]
        signature = "0x" + typed_data_sign(typed, key).hex()
        with self.callbacks(execute=False) as queued:
            second = api.put(url, {"offers": offers, "signature": signature}, format="json")
        return first, second, queued

    def publish(self, content, offers) -> list[dict]:
        _, second, queued = self.put_offers(content, offers)
        assert second.status_code == 200, second.json()
        relay(queued)
        return self.client_for(self.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]

    def send_all(self, transactions, key=VIEWER_KEY) -> list:
        receipts = []
        sender = Account.from_key(key).address
        for tx in transactions:
            assert int(tx["chainId"], 16) == self.web3.eth.chain_id
            tx_hash = self.web3.eth.send_transaction(
                {"from": sender, "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)}
            )
            receipts.append(self.web3.eth.wait_for_transaction_receipt(tx_hash))
        return receipts

    def buy(self, content, offer_id, **body):
        api = self.client_for(self.viewer)
        answer = api.post(
            f"/api/v1/contents/{content.id}/purchase/", {"offer": offer_id, **body}, format="json"
        )
        assert answer.status_code == 200, answer.json()
        return self.send_all(answer.json())

    def index(self) -> None:
        """Index the chain and run what its commit announces (the access app's invalidation)."""
        with self.callbacks(execute=True):
            index_chain(caip2=self.caip2)

    def play(self, content, user=None):
        return self.client_for(user or self.viewer).post(f"/api/v1/contents/{content.id}/playback/")


def relay(queued) -> None:
    """Run the relay task and its tracking as the worker would (arguments through JSON)."""
    for callback in queued:
        task = getattr(callback, "task", None)
        if task is chain_offers_relay:
            (offer_set_id,) = json.loads(json.dumps(callback.args))
            chain_offers_relay.run(offer_set_id)
            # eth-tester mines at once and needs no confirmations: one look makes it live.
            assert offer_set_track(offer_set_id=offer_set_id) is True


@pytest.fixture
def market(tester_chain, deployed, client_for, media_root, django_capture_on_commit_callbacks):
    return Market(
        tester_chain, deployed, client_for, media_root, django_capture_on_commit_callbacks
    )


NATIVE_BUY = {"kind": "purchase", "currency": None, "amount": "10000000000000000"}


def offer(market, **fields):
    return {"chain": market.caip2, "period_seconds": 0, **NATIVE_BUY, **fields}


def test_creator_signs_offers_and_they_go_live(market):
    content = market.content(
        {"any": [{"purchase": {"chain": market.caip2}}, {"membership": {"chain": market.caip2}}]}
    )
    offers = [
        offer(market),
        offer(
            market,
            kind="rental",
            currency=market.token.address,
            amount="2000000",
            period_seconds=48 * 3600,
        ),
        offer(market, kind="membership", amount="1000000000000000", period_seconds=30 * 86400),
    ]
    first, second, queued = market.put_offers(content, offers)
    typed = first.json()["typed_data"]
    assert first.json()["signer"] == market.creator_address
    assert typed["primaryType"] == "SetOffers"
    assert typed["domain"]["verifyingContract"] == market.registry.address
    assert typed["message"]["contentId"] == "0x" + content_id_bytes32(content.id).hex()
    assert [o["amount"] for o in typed["message"]["offers"]] == [
        "10000000000000000",
        "2000000",
        "1000000000000000",
    ]
    assert second.json()["status"] == "relaying"
    # Not live until the chain has it: the content shows no offers yet.
    assert (
        market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]
        == []
    )
    relay(queued)
    shown = market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]
    assert [(o["kind"], o["amount"], o["period_seconds"]) for o in shown] == [
        ("purchase", "10000000000000000", 0),
        ("rental", "2000000", 172800),
        ("membership", "1000000000000000", 2592000),
    ]
    assert shown[0]["currency"] == {"address": None, "symbol": "ETH", "decimals": 18}
    # The audit trail: the creator's consent (by the API caller) and the chain's confirmation.
    (signed_row,) = AuditEvent.objects.filter(event="chain.offers.signed")
    (live_row,) = AuditEvent.objects.filter(event="chain.offers.live")
    live_set = OfferSet.objects.get(content=content, status=OfferSetStatus.LIVE)
    assert (signed_row.actor, signed_row.target_id) == (market.creator.username, str(content.id))
    assert signed_row.details["creator"] == market.creator_address
    assert len(signed_row.details["terms"]) == 3
    assert (live_row.actor_kind, live_row.target_id) == ("system", str(content.id))
    assert live_row.details == {
        "offer_set_id": live_set.pk,
        "chain": market.caip2,
        "tx_hash": live_set.tx_hash,
    }
    assert shown[1]["currency"] == {
        "address": market.token.address,
        "symbol": "USDC",
        "decimals": 6,
    }
    ids = market.registry.functions.offerIdsOf(content_id_bytes32(content.id)).call()
    assert [int(o.onchain_id) for o in Offer.objects.filter(offer_set__status="live")] == ids
    # The relayer paid the gas; the registry's nonce for the creator moved on.
    assert market.registry.functions.nonces(market.creator_address).call() == 1

    # Replacing the offers supersedes the old set; the old on-chain ids no longer sell.
    market.publish(content, [offer(market, amount="5")])
    assert OfferSet.objects.filter(content=content, status=OfferSetStatus.SUPERSEDED).count() == 1
    shown = market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]
    assert [o["amount"] for o in shown] == ["5"]


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"kind": "gift"}, 400, "offers"),
        ({"kind": "purchase", "period_seconds": 60}, 400, "offers"),
        ({"kind": "rental", "period_seconds": 0}, 400, "offers"),
        ({"amount": "0"}, 400, "offers"),
        ({"amount": "1.5"}, 400, "offers"),
        ({"amount": str(2**256)}, 400, "offers"),
        ({"currency": "0x1234"}, 400, "offers"),
        ({"currency": "0x" + "12" * 20}, 400, "currency"),  # no contract there
        ({"chain": "eip155:1"}, 409, "not_registered"),
        ({"surprise": 1}, 400, "offers"),
    ],
)
def test_bad_offers_are_refused_with_a_reason(market, change, status, reason):
    content = market.content()
    api = market.client_for(market.creator)
    answer = api.put(
        f"/api/v1/contents/{content.id}/offers/",
        {"offers": [offer(market, **change)]},
        format="json",
    )
    assert (answer.status_code, answer.json()["reason"]) == (status, reason), answer.json()


def test_only_the_creators_wallet_signs(market):
    content = market.content()
    offers = [offer(market)]
    _, forged, _ = market.put_offers(content, offers, key=OTHER_KEY)
    assert (forged.status_code, forged.json()["reason"]) == (400, "bad_signature")
    assert not OfferSet.objects.filter(status__in=("relaying", "live")).exists()

    # Without a draft (or with other offers than the draft's), nothing is relayed.
    api = market.client_for(market.creator)
    url = f"/api/v1/contents/{content.id}/offers/"
    other = api.put(
        url, {"offers": [offer(market, amount="7")], "signature": "0x" + "11" * 65}, format="json"
    )
    assert (other.status_code, other.json()["reason"]) == (409, "no_draft")

    # Someone who is not the owner cannot even ask.
    stranger = market.client_for(market.viewer).put(url, {"offers": offers}, format="json")
    assert stranger.status_code == 403

    # An owner whose linked wallets do not include the on-chain creator is told which it is.
    market.creator.wallets.all().delete()
    WalletFactory(user=market.creator, address=Account.from_key(OTHER_KEY).address)
    moved = api.put(url, {"offers": offers}, format="json")
    assert (moved.status_code, moved.json()["reason"]) == (409, "not_creator_wallet")
    assert market.creator_address in moved.json()["detail"]


def test_a_replayed_signature_is_refused_on_chain(market):
    content = market.content()
    first, second, queued = market.put_offers(content, [offer(market)])
    relay(queued)
    set_one = OfferSet.objects.get(status="live")
    # The same signed call sent again (by anyone) reverts: its nonce is used.
    from eth_tester.exceptions import TransactionFailed

    from apps.chain.transactions import decode_revert

    with pytest.raises(TransactionFailed) as raised:
        market.registry.functions.setOffers(
            content_id_bytes32(content.id),
            [tuple(t[:2]) + (int(t[2]), t[3]) for t in set_one.terms],
            int(set_one.nonce),
            set_one.deadline,
            bytes.fromhex(set_one.signature[2:]),
        ).transact({"from": market.web3.eth.accounts[0]})
    assert decode_revert(raised.value, ("ContentRegistry",)) == "InvalidAccountNonce"


def test_buy_then_play_at_once(market):
    content = market.content()
    (native,) = market.publish(content, [offer(market)])
    denied = market.play(content)
    assert denied.status_code == 403
    assert denied.json()["reason"] == "purchase_required"
    assert denied.json()["offers"] == [native]

    answer = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/", {"offer": native["id"]}, format="json"
    )
    (tx,) = answer.json()
    assert tx["to"] == market.registry.address
    assert int(tx["value"], 16) == 10**16
    (receipt,) = market.send_all([tx])
    assert receipt["status"] == 1
    # The cached "no" is still there until the purchase is seen: the status endpoint (what the
    # page polls) sees it confirmed and drops it.
    status = market.client_for(market.viewer).get(
        f"/api/v1/contents/{content.id}/purchase/?tx={receipt['transactionHash'].to_0x_hex()}"
    )
    assert status.json() == {
        "state": "confirmed",
        "chain": market.caip2,
        "confirmations": 1,
        "playable": True,
    }
    played = market.play(content)
    assert played.status_code == 200, played.json()

    market.index()
    status = market.client_for(market.viewer).get(
        f"/api/v1/contents/{content.id}/purchase/?tx={receipt['transactionHash'].to_0x_hex()}"
    )
    assert status.json()["state"] == "indexed"


def test_the_indexer_opens_the_gate_without_waiting_for_ttls(market, settings):
    settings.GATE_CACHE_NEGATIVE_TTL = 3600
    content = market.content()
    (native,) = market.publish(content, [offer(market)])
    assert market.play(content).status_code == 403  # "not bought" cached for an hour
    answer = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/", {"offer": native["id"]}, format="json"
    )
    market.send_all(answer.json())
    assert market.play(content).status_code == 403  # still the cached answer
    market.index()  # sees AccessPurchased: the buyer's answers are dropped
    assert market.play(content).status_code == 200


def test_a_rental_stops_playing_when_it_ends(market, settings):
    settings.GATE_CACHE_POSITIVE_TTL = 3600  # longer than the rental: the expiry must cap it
    content = market.content()
    (rental,) = market.publish(content, [offer(market, kind="rental", period_seconds=600)])
    market.buy(content, rental["id"])
    market.index()
    assert market.play(content).status_code == 200
    chain_now = market.web3.eth.get_block("latest")["timestamp"]
    with _later(601):
        market.chain.tester.time_travel(chain_now + 601)
        market.chain.mine()
        denied = market.play(content)
    assert denied.status_code == 403
    assert denied.json()["reason"] == "purchase_required"


def _later(seconds: float):
    import time

    return time_machine.travel(time.time() + seconds, tick=True)


def test_a_membership_opens_every_content_of_the_creator(market):
    pass_only = {"membership": {"chain": market.caip2}}
    first = market.content({"any": [{"purchase": {"chain": market.caip2}}, pass_only]})
    second = market.content(pass_only)
    bought_only = market.content()  # asks for a purchase of itself, a pass does not do
    membership_offer = offer(market, kind="membership", amount="1000", period_seconds=86400)
    (membership,) = market.publish(first, [membership_offer])
    market.publish(second, [membership_offer])
    market.publish(bought_only, [offer(market)])
    assert market.play(second).json()["reason"] == "purchase_required"
    market.buy(first, membership["id"])
    market.index()
    assert market.play(first).status_code == 200
    assert market.play(second).status_code == 200  # the pass covers the creator's contents
    assert market.play(bought_only).json()["reason"] == "purchase_required"


def test_offers_that_could_not_open_the_gate_are_refused(market, deployed):
    content = market.content()  # gated by a purchase: a pass would not let anyone in
    api = market.client_for(market.creator)
    url = f"/api/v1/contents/{content.id}/offers/"
    pass_offer = offer(market, kind="membership", amount="1000", period_seconds=86400)
    refused = api.put(url, {"offers": [offer(market), pass_offer]}, format="json")
    assert (refused.status_code, refused.json()["reason"]) == (409, "offer_cannot_open")
    assert refused.json()["detail"].startswith("offers[1]")
    # The gate changes after the offers were published: nothing is sold that cannot open it.
    (native,) = market.publish(content, [offer(market)])
    nft = {"erc721": {"chain": market.caip2, "contract": deployed.nft721.address, "token_id": None}}
    type(content).objects.filter(pk=content.pk).update(gate=nft)
    denied = market.play(content).json()
    assert denied["reason"] == "gate_denied"  # no offers pushed at the viewer
    bought = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/", {"offer": native["id"]}, format="json"
    )
    assert (bought.status_code, bought.json()["reason"]) == (409, "offer_cannot_open")


def test_a_node_that_does_not_answer_is_a_503(market, settings):
    on_both = [{"purchase": {"chain": market.caip2}}, {"purchase": {"chain": "eip155:31337"}}]
    content = market.content({"any": on_both})
    market.publish(content, [offer(market)])
    dead = {**settings.CHAIN_RPC_URLS}
    Registration.objects.filter(content=content).update(chain="eip155:31337")
    OfferSet.objects.filter(content=content).update(chain="eip155:31337")
    settings.CHAIN_RPC_URLS = {**dead, "eip155:31337": "http://127.0.0.1:9"}
    api = market.client_for(market.creator)
    put = api.put(
        f"/api/v1/contents/{content.id}/offers/",
        {"offers": [offer(market, chain="eip155:31337")]},
        format="json",
    )
    assert (put.status_code, put.json()["reason"]) == (503, "chain_unavailable")
    assert put["Retry-After"] == "10"
    (live,) = (
        market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]
    )
    buy = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/", {"offer": live["id"]}, format="json"
    )
    assert (buy.status_code, buy.json()["reason"]) == (503, "chain_unavailable")
    withdraw = api.post(
        "/api/v1/sales/withdraw/", {"chain": "eip155:31337", "currency": None}, format="json"
    )
    assert (withdraw.status_code, withdraw.json()["reason"]) == (503, "chain_unavailable")


def test_erc20_purchase_approves_first_or_takes_a_permit(market):
    content = market.content()
    plain, permit = market.publish(
        content,
        [
            offer(
                market,
                kind="rental",
                currency=market.plain.address,
                amount="300",
                period_seconds=60,
            ),
            offer(market, currency=market.token.address, amount="2000000"),
        ],
    )
    api = market.client_for(market.viewer)
    url = f"/api/v1/contents/{content.id}/purchase/"
    approve, buy = api.post(url, {"offer": plain["id"]}, format="json").json()
    assert approve["to"] == market.plain.address
    assert buy["to"] == market.registry.address
    market.send_all([approve])
    (only_buy,) = api.post(url, {"offer": plain["id"]}, format="json").json()
    assert only_buy == buy  # the allowance is there now: no second approve
    market.send_all([only_buy])
    assert market.plain.functions.balanceOf(market.registry.address).call() == 300

    # A permit: one signature instead of an approve transaction.
    assert (
        api.post(url, {"offer": plain["id"], "permit": True}, format="json").json()["reason"]
        == "no_permit"
    )
    asked = api.post(url, {"offer": permit["id"], "permit": True}, format="json")
    assert asked.status_code == 202
    typed = asked.json()["typed_data"]
    assert typed["primaryType"] == "Permit"
    assert typed["message"]["spender"] == market.registry.address
    signature = "0x" + typed_data_sign(typed, VIEWER_KEY).hex()
    done = api.post(
        url,
        {
            "offer": permit["id"],
            "permit": True,
            "signature": signature,
            "deadline": asked.json()["deadline"],
        },
        format="json",
    )
    (tx,) = done.json()
    (receipt,) = market.send_all([tx])
    assert receipt["status"] == 1
    expiry, _, _ = market.registry.functions.accessUntil(
        content_id_bytes32(content.id), market.viewer_address
    ).call()
    assert expiry == 2**64 - 1  # bought for ever


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({}, 400, "offer"),
        ({"offer": "1"}, 400, "offer"),
        ({"offer": 999999}, 404, "offer"),
        ({"account": "0x" + "ab" * 20}, 400, "account"),
        ({"account": "nope"}, 400, "account"),
    ],
)
def test_bad_purchase_requests(market, body, status, reason):
    content = market.content()
    (native,) = market.publish(content, [offer(market)])
    payload = body if not body or "offer" in body else {"offer": native["id"], **body}
    answer = market.client_for(market.viewer).post(
        f"/api/v1/contents/{content.id}/purchase/", payload, format="json"
    )
    assert (answer.status_code, answer.json()["reason"]) == (status, reason)


def test_purchase_needs_a_wallet_and_a_signed_in_caller(market, client_for):
    content = market.content()
    (native,) = market.publish(content, [offer(market)])
    url = f"/api/v1/contents/{content.id}/purchase/"
    from rest_framework.test import APIClient

    assert APIClient().post(url, {"offer": native["id"]}, format="json").status_code == 401
    walletless = client_for(UserFactory()).post(url, {"offer": native["id"]}, format="json")
    assert (walletless.status_code, walletless.json()["reason"]) == (409, "no_wallet")
    bad_tx = client_for(market.viewer).get(url + "?tx=0x12")
    assert (bad_tx.status_code, bad_tx.json()["reason"]) == (400, "tx")
    unknown = client_for(market.viewer).get(url + "?tx=0x" + "ab" * 32)
    assert unknown.json()["state"] == "pending"


def test_sales_fees_and_withdraw(market):
    owner = market.web3.eth.accounts[0]
    send(market.registry.functions.setFee(500), owner)  # 5 %
    content = market.content()
    native, token = market.publish(
        content,
        [
            offer(market),
            offer(
                market,
                kind="rental",
                currency=market.token.address,
                amount="2000000",
                period_seconds=3600,
            ),
        ],
    )
    market.buy(content, token["id"])  # a rental, then the purchase for ever
    market.buy(content, native["id"])
    market.index()
    api = market.client_for(market.creator)
    sales = api.get("/api/v1/sales/").json()
    assert [(p["kind"], p["amount"], p["fee"], p["buyer"]) for p in sales["purchases"]] == [
        ("purchase", "10000000000000000", "500000000000000", market.viewer_address),
        ("rental", "2000000", "100000", market.viewer_address),
    ]
    totals = {t["currency"]["symbol"]: t for t in sales["totals"]}
    assert totals["ETH"]["net"] == str(10**16 - 5 * 10**14)
    assert totals["USDC"] == {
        "chain": market.caip2,
        "currency": {"address": market.token.address, "symbol": "USDC", "decimals": 6},
        "gross": "2000000",
        "fees": "100000",
        "net": "1900000",
        "count": 1,
    }
    balances = {b["currency"]["symbol"]: b for b in sales["balances"]}
    assert balances["ETH"]["withdrawable"] == str(10**16 - 5 * 10**14)
    assert balances["USDC"]["withdrawable"] == "1900000"
    assert balances["ETH"]["payout"] == market.creator_address

    # The viewer sees no sales of theirs.
    assert market.client_for(market.viewer).get("/api/v1/sales/").json()["purchases"] == []

    before = market.web3.eth.get_balance(market.creator_address)
    answer = api.post(
        "/api/v1/sales/withdraw/", {"chain": market.caip2, "currency": None}, format="json"
    )
    (tx,) = answer.json()
    (receipt,) = market.send_all([tx], key=OTHER_KEY)  # anyone may send it: it pays the creator
    assert market.web3.eth.get_balance(market.creator_address) - before == 10**16 - 5 * 10**14
    again = api.post(
        "/api/v1/sales/withdraw/", {"chain": market.caip2, "currency": None}, format="json"
    )
    assert (again.status_code, again.json()["reason"]) == (409, "nothing_to_withdraw")
    wrong = api.post(
        "/api/v1/sales/withdraw/", {"chain": "eip155:1", "currency": None}, format="json"
    )
    assert (wrong.status_code, wrong.json()["reason"]) == (400, "chain")
    # The treasury (the registry's owner) got the fees, withdrawable the same way.
    assert market.registry.functions.balanceOf(owner, market.token.address).call() == 100000


def test_registration_records_the_creators_wallet(market, django_capture_on_commit_callbacks):
    from apps.chain.services import registration_request

    content = published(market.media_root, owner=UserFactory()).content
    from streamgate.exceptions import Conflict

    with pytest.raises(Conflict, match="Link an Ethereum wallet"):
        registration_request(content=content, caip2=market.caip2)
    address = Account.from_key(OTHER_KEY).address
    WalletFactory(user=content.owner, address=address)
    registration = registration_request(content=content, caip2=market.caip2)
    assert registration.creator == address
    assert Decimal(registration.price) == 0


def test_the_creator_signs_where_proceeds_go(market):
    content = market.content()
    (native,) = market.publish(content, [offer(market)])
    market.buy(content, native["id"])
    payout = Account.from_key(OTHER_KEY).address
    api = market.client_for(market.creator)
    body = {"chain": market.caip2, "payout": payout}
    asked = api.put("/api/v1/sales/payout/", body, format="json")
    assert asked.status_code == 202, asked.json()
    typed = asked.json()["typed_data"]
    assert typed["primaryType"] == "SetPayout"
    assert typed["message"] == {
        "creator": market.creator_address,
        "payout": payout,
        "nonce": 1,  # the offers used nonce 0
        "deadline": typed["message"]["deadline"],
    }
    forged = api.put(
        "/api/v1/sales/payout/",
        {**body, "signature": "0x" + typed_data_sign(typed, VIEWER_KEY).hex()},
        format="json",
    )
    assert (forged.status_code, forged.json()["reason"]) == (400, "bad_signature")
    with market.callbacks() as queued:
        signed = api.put(
            "/api/v1/sales/payout/",
            {**body, "signature": "0x" + typed_data_sign(typed, CREATOR_KEY).hex()},
            format="json",
        )
    assert signed.json()["status"] == "relaying"
    # What the sales page follows: the newest signed change per chain and creator address.
    (followed,) = api.get("/api/v1/sales/payout/").json()
    assert followed == {
        "chain": market.caip2,
        "account": market.creator_address,
        "payout": payout,
        "status": "relaying",
        "tx_hash": None,
        "error": None,
    }
    (change_id,) = [c.args[0] for c in queued if getattr(c, "task", None) is chain_payout_relay]
    chain_payout_relay.run(change_id)
    assert payout_track(change_id=change_id) is True
    assert PayoutChange.objects.get(pk=change_id).status == "live"
    # The audit trail: the signed change (the forged one was refused, not recorded) and its
    # confirmation, both naming where the money goes.
    (signed_row,) = AuditEvent.objects.filter(event="chain.payout.signed")
    (live_row,) = AuditEvent.objects.filter(event="chain.payout.live")
    assert (signed_row.actor, signed_row.target_id) == (market.creator.username, str(change_id))
    assert signed_row.details == {
        "chain": market.caip2,
        "creator": market.creator_address,
        "payout": payout,
    }
    assert (live_row.actor_kind, live_row.target_id) == ("system", str(change_id))
    assert live_row.details["payout"] == payout
    (followed,) = api.get("/api/v1/sales/payout/").json()
    assert (followed["status"], followed["payout"]) == ("live", payout)
    assert market.client_for(market.viewer).get("/api/v1/sales/payout/").json() == []
    assert market.registry.functions.payoutOf(market.creator_address).call() == payout

    before = market.web3.eth.get_balance(payout)
    (tx,) = api.post(
        "/api/v1/sales/withdraw/", {"chain": market.caip2, "currency": None}, format="json"
    ).json()
    market.send_all([tx], key=VIEWER_KEY)  # anyone sends it; the money goes to the payout
    assert market.web3.eth.get_balance(payout) - before == 10**16

    stranger = market.client_for(market.viewer).put("/api/v1/sales/payout/", body, format="json")
    assert (stranger.status_code, stranger.json()["reason"]) == (400, "chain")
    zero = api.put("/api/v1/sales/payout/", {**body, "payout": "0x" + "00" * 20}, format="json")
    assert (zero.status_code, zero.json()["reason"]) == (400, "payout")


def test_the_indexer_makes_relayed_offers_live(market):
    content = market.content()
    _, signed, queued = market.put_offers(content, [offer(market)])
    (offer_set_id,) = [c.args[0] for c in queued if getattr(c, "task", None) is chain_offers_relay]
    chain_offers_relay.run(offer_set_id)  # sent; its tracking task never runs (a worker died)
    assert OfferSet.objects.get(pk=offer_set_id).status == "submitted"
    market.index()
    assert OfferSet.objects.get(pk=offer_set_id).status == "live"
    (shown,) = (
        market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]
    )
    ids = market.registry.functions.offerIdsOf(content_id_bytes32(content.id)).call()
    assert Offer.objects.get(pk=shown["id"]).onchain_id == ids[0]


def test_purchase_required_only_where_buying_would_open_the_gate(market, deployed):
    nft = {"erc721": {"chain": market.caip2, "contract": deployed.nft721.address, "token_id": None}}
    purchase = {"purchase": {"chain": market.caip2}}
    either = market.content({"any": [nft, purchase]})
    both = market.content({"all": [nft, purchase]})
    for content in (either, both):
        market.publish(content, [offer(market)])
    assert market.play(either).json()["reason"] == "purchase_required"
    # Buying alone would not let this viewer in (no NFT either): no offer is pushed at them.
    denied = market.play(both).json()
    assert denied["reason"] == "gate_denied"
    assert "offers" not in denied
    # Without offers on sale, a purchase gate just denies.
    bare = market.content()
    assert market.play(bare).json()["reason"] == "gate_denied"


def test_a_reorganisation_puts_back_the_offers_the_chain_has(market):
    content = market.content()
    market.publish(content, [offer(market, amount="111")])
    market.index()
    first = OfferSet.objects.get(content=content, status="live")
    fork = market.chain.tester.take_snapshot()
    _, _, queued = market.put_offers(content, [offer(market, amount="222")])
    (second_id,) = [c.args[0] for c in queued if getattr(c, "task", None) is chain_offers_relay]
    chain_offers_relay.run(second_id)
    market.chain.mine(1)
    market.index()  # the indexer makes the second set live
    assert OfferSet.objects.get(pk=second_id).status == "live"
    orphaned = market.web3.eth.block_number

    market.chain.tester.revert_to_snapshot(fork)  # the second set's block is gone
    market.chain.mine(orphaned - market.web3.eth.block_number + 3)
    with market.callbacks(execute=False) as queued:
        report = index_chain(caip2=market.caip2)
    assert report.reorgs == 1
    assert OfferSet.objects.get(pk=second_id).status == "submitted"  # watched again
    assert OfferSet.objects.get(pk=first.pk).status == "live"  # what the chain sells now
    shown = market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()
    assert [o["amount"] for o in shown["offers"]] == ["111"]
    assert any(getattr(c, "task", None) is chain_offers_track for c in queued)
