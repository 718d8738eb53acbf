"""Selling access over a real JSON-RPC node (npx hardhat node, chain 31337), as
tests/chain/test_market.py does on py-evm: contracts deployed by ``deploy_contracts``, offers
signed by the creator's key and relayed by StreamGate's signer (its nonce from the database, a
real broadcast, tracked to live, with and without confirmations), a viewer who buys by sending
the API's transactions signed with their own key, the indexer, and playback: open at once
after a purchase, closed when a rental ends."""

import io
import json
import time

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from eth_account import Account

from apps.chain.chains import contract_for, web3_for
from apps.chain.indexer import index_chain
from apps.chain.models import (
    ChainContract,
    ContractKind,
    OfferSet,
    OfferSetStatus,
    Registration,
    RegistrationStatus,
    SignerNonce,
)
from apps.chain.offers import offer_set_track
from apps.chain.services import content_id_bytes32
from apps.chain.tasks import chain_offers_relay, chain_offers_track
from apps.chain.typed_data import typed_data_sign
from tests.access.conftest import published
from tests.factories import UserFactory, WalletFactory
from tests.support.jsonrpc import hardhat_key, rpc, send_signed

HARDHAT = "eip155:31337"
# Hardhat's default accounts (funded): 0 is StreamGate's signer (the registry's owner and
# registrar), 1 the creator, 2 and 3 viewers.
SIGNER_KEY, CREATOR_KEY, VIEWER_KEY, OTHER_KEY = (hardhat_key(index) for index in range(4))
NATIVE_BUY = {"kind": "purchase", "currency": None, "amount": "10000000000000000"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hardhat(node, settings):
    settings.CHAIN_RPC_URLS = {HARDHAT: node}
    settings.CHAIN_SIGNER_KEY = SIGNER_KEY
    settings.CHAIN_OVERRIDES = {}
    return node


def transact(function, key: str):
    """Call a contract function in a transaction signed with ``key``."""
    built = function.build_transaction({"from": Account.from_key(key).address})
    return send_signed(function.w3, key, {"to": built["to"], "data": built["data"], "value": 0})


class Market:
    def __init__(self, node, client_for, media_root, callbacks):
        self.node = node
        self.callbacks = callbacks
        self.client_for = client_for
        self.media_root = media_root
        call_command(
            "deploy_contracts", "--chain", HARDHAT, "--with-test-tokens", stdout=io.StringIO()
        )
        self.web3 = web3_for(HARDHAT)
        records = {c.kind: c for c in ChainContract.objects.filter(chain=HARDHAT)}
        self.registry = contract_for(
            self.web3, "ContentRegistry", records[ContractKind.REGISTRY].address
        )
        self.token = contract_for(self.web3, "TestToken", records[ContractKind.TOKEN].address)
        self.creator_address = Account.from_key(CREATOR_KEY).address
        self.creator = UserFactory()
        WalletFactory(user=self.creator, address=self.creator_address)
        self.viewer_address = Account.from_key(VIEWER_KEY).address
        self.viewer = UserFactory()
        WalletFactory(user=self.viewer, address=self.viewer_address)

    def content(self):
        content = published(
            self.media_root, gate={"purchase": {"chain": HARDHAT}}, owner=self.creator
        ).content
        function = self.registry.functions.register(
            content_id_bytes32(content.id), self.creator_address, "bafkcid", 0, b"\0" * 32
        )
        assert transact(function, SIGNER_KEY)["status"] == 1
        Registration.objects.create(
            content=content,
            chain=HARDHAT,
            contract=ChainContract.objects.get(chain=HARDHAT, kind=ContractKind.REGISTRY),
            status=RegistrationStatus.CONFIRMED,
            creator=self.creator_address,
            cid="bafkcid",
        )
        return content

    def sign_offers(self, content, offers) -> OfferSet:
        """PUT the offers, sign the typed data with the creator's key, PUT it signed; returns
        the set the relay task was queued for (not run yet)."""
        api = self.client_for(self.creator)
        url = f"/api/v1/contents/{content.id}/offers/"
        first = api.put(url, {"offers": offers}, format="json")
        assert first.status_code == 202, first.json()
        signature = "0x" + typed_data_sign(first.json()["typed_data"], CREATOR_KEY).hex()
        with self.callbacks(execute=False) as queued:
            second = api.put(url, {"offers": offers, "signature": signature}, format="json")
        assert second.status_code == 200, second.json()
        (offer_set_id,) = [
            json.loads(json.dumps(c.args))[0]
            for c in queued
            if getattr(c, "task", None) is chain_offers_relay
        ]
        return OfferSet.objects.get(pk=offer_set_id)

    def relay(self, offer_set: OfferSet) -> OfferSet:
        """The relay task as the worker runs it; the tracking task it queues is returned too."""
        with self.callbacks(execute=False) as queued:
            chain_offers_relay.run(offer_set.pk)
        assert [getattr(c, "task", None) for c in queued] == [chain_offers_track]
        return OfferSet.objects.get(pk=offer_set.pk)

    def publish(self, content, offers) -> list[dict]:
        offer_set = self.relay(self.sign_offers(content, offers))
        assert offer_set_track(offer_set_id=offer_set.pk) is True  # no confirmations on 31337
        return self.client_for(self.viewer).get(f"/api/v1/contents/{content.id}/").json()["offers"]

    def buy(self, content, offer_id, key=VIEWER_KEY) -> list:
        answer = self.client_for(self.viewer).post(
            f"/api/v1/contents/{content.id}/purchase/", {"offer": offer_id}, format="json"
        )
        assert answer.status_code == 200, answer.json()
        receipts = []
        for tx in answer.json():
            assert int(tx["chainId"], 16) == 31337
            receipts.append(
                send_signed(
                    self.web3,
                    key,
                    {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)},
                )
            )
        assert [r["status"] for r in receipts] == [1] * len(receipts)
        return receipts

    def index(self) -> None:
        """Index the chain and run what its commit announces (the access app's invalidation)."""
        with self.callbacks(execute=True):
            index_chain(caip2=HARDHAT)

    def play(self, content):
        return self.client_for(self.viewer).post(f"/api/v1/contents/{content.id}/playback/")

    def status(self, content, receipt) -> dict:
        tx = receipt["transactionHash"].to_0x_hex()
        return (
            self.client_for(self.viewer)
            .get(f"/api/v1/contents/{content.id}/purchase/?tx={tx}")
            .json()
        )


@pytest.fixture
def market(hardhat, client_for, media_root, django_capture_on_commit_callbacks):
    return Market(hardhat, client_for, media_root, django_capture_on_commit_callbacks)


def offer(**fields):
    return {"chain": HARDHAT, "period_seconds": 0, **NATIVE_BUY, **fields}


def test_the_indexer_opens_the_gate_without_waiting_for_ttls(market, settings):
    settings.GATE_CACHE_NEGATIVE_TTL = 3600
    content = market.content()
    (native,) = market.publish(content, [offer()])
    denied = market.play(content)
    assert (denied.status_code, denied.json()["reason"]) == (403, "purchase_required")
    assert denied.json()["offers"] == [native]
    (receipt,) = market.buy(content, native["id"])
    assert market.play(content).status_code == 403  # the cached "no", good for an hour
    market.index()  # sees AccessPurchased over eth_getLogs: the buyer's answers are dropped
    played = market.play(content)
    assert played.status_code == 200, played.json()
    assert market.status(content, receipt)["state"] == "indexed"
    expiry, _, _ = market.registry.functions.accessUntil(
        content_id_bytes32(content.id), market.viewer_address
    ).call()
    assert expiry == 2**64 - 1


def test_the_purchase_status_opens_the_gate_once_confirmed(market, settings):
    """What the watch page does: poll the status; one confirmation asked for, so the purchase
    is mined, then confirmed one block later, and playback opens before any indexing."""
    settings.GATE_CACHE_NEGATIVE_TTL = 3600
    content = market.content()
    (native,) = market.publish(content, [offer()])
    settings.CHAIN_OVERRIDES = {HARDHAT: {"confirmations": 1}}
    assert market.play(content).status_code == 403
    (receipt,) = market.buy(content, native["id"])
    assert market.status(content, receipt) == {
        "state": "mined",
        "chain": HARDHAT,
        "confirmations": 1,
        "playable": False,
    }
    assert market.play(content).status_code == 403
    rpc(market.node, "evm_mine")
    assert market.status(content, receipt) == {
        "state": "confirmed",
        "chain": HARDHAT,
        "confirmations": 2,
        "playable": True,
    }
    played = market.play(content)
    assert played.status_code == 200, played.json()


def _later(seconds: float):
    return time_machine.travel(time.time() + seconds, tick=True)


def test_a_rental_stops_playing_when_it_ends(market, settings):
    """An ERC-20 rental (approve, then buy: two transactions from the viewer's key)."""
    settings.GATE_CACHE_POSITIVE_TTL = 3600  # longer than the rental: the expiry must cap it
    content = market.content()
    transact(market.token.functions.mint(market.viewer_address, 10**9), SIGNER_KEY)
    (rental,) = market.publish(
        content,
        [offer(kind="rental", currency=market.token.address, amount="2000000", period_seconds=600)],
    )
    assert rental["currency"]["symbol"] == "SGUSD"
    approve, buy = market.buy(content, rental["id"])
    assert approve["to"] == market.token.address
    market.index()
    assert market.play(content).status_code == 200
    assert market.token.functions.balanceOf(market.registry.address).call() == 2_000_000
    rpc(market.node, "evm_increaseTime", [601])
    rpc(market.node, "evm_mine")
    with _later(601):
        denied = market.play(content)
    assert (denied.status_code, denied.json()["reason"]) == (403, "purchase_required")


def test_offers_are_relayed_with_the_signers_nonce_and_go_live(market):
    content = market.content()
    signer = Account.from_key(SIGNER_KEY).address
    offer_set = market.relay(market.sign_offers(content, [offer()]))
    assert offer_set.status == OfferSetStatus.SUBMITTED
    assert offer_set.sender == signer
    sent = market.web3.eth.get_transaction(offer_set.tx_hash)  # broadcast for real
    assert (sent["from"], sent["nonce"], sent["to"]) == (
        signer,
        offer_set.tx_nonce,
        market.registry.address,
    )
    row = SignerNonce.objects.get(chain=HARDHAT, address=signer)
    assert row.next_nonce == offer_set.tx_nonce + 1
    assert chain_offers_track.run(offer_set.pk) is True  # automine, no confirmations: live
    offer_set.refresh_from_db()
    assert offer_set.status == OfferSetStatus.LIVE
    assert market.registry.functions.nonces(market.creator_address).call() == 1
    ids = market.registry.functions.offerIdsOf(content_id_bytes32(content.id)).call()
    assert [int(o.onchain_id) for o in offer_set.offers.all()] == ids

    # A second set: the next nonce from the database row, the first set superseded.
    second = market.relay(market.sign_offers(content, [offer(amount="5")]))
    assert second.tx_nonce == offer_set.tx_nonce + 1
    assert market.web3.eth.get_transaction(second.tx_hash)["nonce"] == second.tx_nonce
    assert offer_set_track(offer_set_id=second.pk) is True
    offer_set.refresh_from_db()
    assert offer_set.status == OfferSetStatus.SUPERSEDED
    shown = market.client_for(market.viewer).get(f"/api/v1/contents/{content.id}/").json()
    assert [o["amount"] for o in shown["offers"]] == ["5"]


def test_a_relay_refused_for_its_nonce_is_sent_again_with_a_healed_one(market):
    """A nonce reserved by a process that died before broadcasting: the node refuses the next
    one as too high; the relay heals the row and sends the set at the node's nonce."""
    from django.db import transaction

    from apps.chain.chains import chain
    from apps.chain.transactions import next_nonce

    content = market.content()
    signer = Account.from_key(SIGNER_KEY).address
    with transaction.atomic():
        pending = market.web3.eth.get_transaction_count(signer, "pending")
        lost = next_nonce(chain=chain(HARDHAT), address=signer, node_pending=pending)
    offer_set = market.relay(market.sign_offers(content, [offer()]))
    assert (offer_set.status, offer_set.tx_nonce) == (OfferSetStatus.SUBMITTED, lost)
    assert market.web3.eth.get_transaction(offer_set.tx_hash)["nonce"] == lost
    assert chain_offers_track.run(offer_set.pk) is True


def test_offers_wait_for_confirmations(market, settings):
    settings.CHAIN_OVERRIDES = {HARDHAT: {"confirmations": 2}}
    content = market.content()
    offer_set = market.relay(market.sign_offers(content, [offer()]))
    receipt = market.web3.eth.get_transaction_receipt(offer_set.tx_hash)
    assert receipt["status"] == 1  # mined at once (automine), not yet deep enough
    offers_url = f"/api/v1/contents/{content.id}/"
    for _ in range(2):
        assert offer_set_track(offer_set_id=offer_set.pk) is False
        market.index()  # the indexer does not see it either: its block is not safe yet
        offer_set.refresh_from_db()
        assert offer_set.status == OfferSetStatus.SUBMITTED
        assert market.client_for(market.viewer).get(offers_url).json()["offers"] == []
        rpc(market.node, "evm_mine")
    assert market.web3.eth.block_number - receipt["blockNumber"] == 2
    assert offer_set_track(offer_set_id=offer_set.pk) is True
    offer_set.refresh_from_db()
    assert offer_set.status == OfferSetStatus.LIVE
    (shown,) = market.client_for(market.viewer).get(offers_url).json()["offers"]
    assert shown["amount"] == NATIVE_BUY["amount"]


def test_offers_go_live_by_the_indexer_when_tracking_is_late(market, settings):
    """The indexer seeing OffersSet (once deep enough) makes the set live by itself."""
    settings.CHAIN_OVERRIDES = {HARDHAT: {"confirmations": 1}}
    content = market.content()
    offer_set = market.relay(market.sign_offers(content, [offer()]))
    rpc(market.node, "evm_mine")
    market.index()
    offer_set.refresh_from_db()
    assert offer_set.status == OfferSetStatus.LIVE
    assert offer_set_track(offer_set_id=offer_set.pk) is True  # nothing more to watch


def test_a_registry_deployed_later_does_not_take_over_sold_contents(market, settings):
    """deploy_contracts run again on the chain (say, for its test tokens) records a newer
    registry; contents registered, offered and bought on the first one keep playing there, and
    a purchase made after it (the offers still live in the first registry) opens playback."""
    content = market.content()
    (native,) = market.publish(content, [offer()])
    market.buy(content, native["id"])
    market.index()
    assert market.play(content).status_code == 200
    call_command("deploy_contracts", "--chain", HARDHAT, "--with-test-tokens", stdout=io.StringIO())
    newer = ChainContract.objects.filter(chain=HARDHAT, kind=ContractKind.REGISTRY).latest("pk")
    assert newer.address != market.registry.address
    cache.clear()  # as any answer's TTL would end
    played = market.play(content)
    assert played.status_code == 200, played.json()

    # A second buyer after the new deployment: told the offer, buys it (in the first registry,
    # where the content and its offers are), and plays once the purchase is confirmed.
    other = UserFactory()
    WalletFactory(user=other, address=Account.from_key(OTHER_KEY).address)
    market.viewer = other
    denied = market.play(content)
    assert (denied.status_code, denied.json()["reason"]) == (403, "purchase_required")
    (receipt,) = market.buy(content, native["id"], key=OTHER_KEY)
    assert receipt["to"] == market.registry.address
    assert market.status(content, receipt)["playable"] is True
    played = market.play(content)
    assert played.status_code == 200, played.json()
