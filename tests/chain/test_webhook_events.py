"""The chain app's webhook events: a confirmed registration and an indexed purchase, each
announced once however often it is seen (the watcher and the indexer, replays)."""

import json

import pytest

from apps.chain.models import ChainContract, ChainEvent, ContractKind, Registration
from apps.chain.webhooks import purchases_announce, registration_confirmed_announce
from apps.content.webhooks.models import WebhookDelivery
from apps.content.webhooks.services import endpoint_create
from tests.factories import ContentFactory

pytestmark = pytest.mark.django_db
CHAIN = "eip155:31337"


def bodies():
    return [json.loads(d.event.body) for d in WebhookDelivery.objects.order_by("id")]


def test_a_confirmed_registration_is_announced_once():
    content = ContentFactory(status="ready", title="On chain")
    endpoint_create(
        owner=content.owner, url="https://a.example/x", events=["registration.confirmed"]
    )
    registry = ChainContract.objects.create(
        chain=CHAIN, kind=ContractKind.REGISTRY, address="0x" + "11" * 20
    )
    registration = Registration.objects.create(
        content=content, chain=CHAIN, contract=registry, status="confirmed",
        tx_hash="0x" + "ab" * 32, block_number=7,
    )  # fmt: skip
    registration_confirmed_announce(registration_id=registration.pk)
    registration_confirmed_announce(registration_id=registration.pk)  # the indexer saw it too
    [event] = bodies()
    assert event["type"] == "registration.confirmed"
    assert event["data"]["content_id"] == str(content.id)
    assert event["data"]["registration"]["tx_hash"] == "0x" + "ab" * 32
    assert event["data"]["registration"]["block_number"] == 7


def test_an_indexed_purchase_is_announced_once_and_others_contents_are_skipped():
    content = ContentFactory(status="ready")
    endpoint_create(owner=content.owner, url="https://a.example/x", events=["access.purchased"])
    args = {
        "contentId": "0x" + content.id.bytes.rjust(32, b"\0").hex(),
        "buyer": "0x" + "22" * 20,
        "token": "0x" + "00" * 20,
        "amount": "1000",
        "fee": "25",
        "kind": 0,
        "expiresAt": str(2**64 - 1),
    }
    ours = ChainEvent(
        chain=CHAIN, block_number=9, block_hash="0x" + "cd" * 32, tx_hash="0x" + "ef" * 32,
        log_index=3, address="0x" + "11" * 20, name="AccessPurchased", args=args,
    )  # fmt: skip
    foreign = ChainEvent(
        chain=CHAIN, block_number=9, block_hash="0x" + "cd" * 32, tx_hash="0x" + "ef" * 32,
        log_index=4, address="0x" + "11" * 20, name="AccessPurchased",
        args={**args, "contentId": "0x" + "99" * 32},
    )  # fmt: skip
    purchases_announce(caip2=CHAIN, events=[ours, foreign])
    purchases_announce(caip2=CHAIN, events=[ours])  # a replayed batch
    [event] = bodies()
    assert event["type"] == "access.purchased"
    purchase = event["data"]["purchase"]
    assert (purchase["kind"], purchase["amount"], purchase["fee"]) == ("purchase", "1000", "25")
    assert purchase["expires_at"] is None
    assert purchase["buyer"] == "0x" + "22" * 20
