"""HLS keys answered before Django from a remembered gate decision (apps/access/key_decisions.py):
the same answer as Django's view, and never once a write has changed what the decision read.

Each request goes through the fast layer in front of the ASGI handler the served stack wraps
(the test settings' cache is the test Redis). The first GET of a key is Django's, which
remembers its yes; the next is the layer's, identical but for Date, Server and X-Request-ID.
"""

import time

import pytest
from django.core.cache import caches
from prometheus_client import REGISTRY

from apps.access.key_decisions import KEYS, KeyFiles, _names
from apps.chain.signals import nft_transfer_seen
from streamgate.settings.environment import cache_config
from streamgate.streaming import StreamingBodyASGIHandler
from tests.access.test_content_keys import ACCOUNT, encrypted, holder, key_url, signed
from tests.support.edge_client import asgi_get
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)

PER_REQUEST = {"date", "server", "x-request-id"}


def served() -> float:
    sample = REGISTRY.get_sample_value
    return sample("streamgate_key_fast_responses_total", {"outcome": "served"}) or 0


@pytest.fixture
def django_app():
    return StreamingBodyASGIHandler()


@pytest.fixture
def fast(django_app):
    return KeyFiles(django_app)


@pytest.fixture
def ready(media_root):
    item, hls, _ = encrypted(media_root)
    viewer = holder()
    url = key_url(
        item.content, hls, signed(item.content, viewer.pk, expires=int(time.time()) + 600)
    )
    return item, hls, viewer, url


def get(app, url: str, method: str = "GET") -> tuple[dict, bool]:
    """The answer, and whether the fast layer gave it."""
    before = served()
    answer = asgi_get(app, url, method=method)
    return answer, served() > before


def test_the_second_get_of_a_key_is_the_layers_and_the_same_as_djangos(ready, fast, django_app):
    item, hls, _viewer, url = ready
    first, by_layer = get(fast, url)
    assert (first["status"], first["body"], by_layer) == (200, hls.key, False), first["body"]
    second, by_layer = get(fast, url)
    assert by_layer
    reference = asgi_get(django_app, url)
    assert (second["status"], second["body"]) == (reference["status"], reference["body"])
    theirs = {k: v for k, v in reference["headers"].items() if k not in PER_REQUEST}
    ours = {k: v for k, v in second["headers"].items() if k not in PER_REQUEST}
    assert ours == theirs
    assert ours["cache-control"] == "no-store"
    assert second["headers"]["x-request-id"] != reference["headers"]["x-request-id"]


def test_a_remembered_yes_lasts_no_longer_than_the_key_token(ready, fast, media_root):
    item, hls, viewer, _ = ready
    url = key_url(item.content, hls, signed(item.content, viewer.pk, expires=int(time.time()) + 5))
    get(fast, url)
    ttl = caches["default"].client.get_client().ttl(_names(str(item.content.id), viewer.pk)[0])
    assert 0 < ttl <= 5


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ("gate tightened", 403, "gate_denied"),
        ("wallet unlinked", 403, "no_wallet"),
        ("viewer deactivated", 403, "bad_token"),
    ],
)
def test_a_write_the_decision_read_sends_the_next_key_fetch_to_django_which_refuses(
    ready, fast, change, status, reason
):
    item, _hls, viewer, url = ready
    get(fast, url)
    assert get(fast, url)[1]  # remembered
    if change == "gate tightened":
        item.content.gate = {"allowlist": {"accounts": ["eip155:1:0x" + "77" * 20]}}
        item.content.save()
    elif change == "wallet unlinked":
        for wallet in viewer.wallets.all():
            wallet.delete()
    else:
        viewer.is_active = False
        viewer.save()
    answer, by_layer = get(fast, url)
    assert not by_layer
    assert answer["status"] == status
    assert reason in answer["body"].decode()


def test_a_chain_event_sends_the_next_key_fetch_to_django(ready, fast):
    _item, hls, _viewer, url = ready
    get(fast, url)
    nft_transfer_seen.send(
        sender=None, chain="eip155:1", contract="0x" + "ab" * 20, accounts=[ACCOUNT]
    )
    answer, by_layer = get(fast, url)
    assert (answer["status"], answer["body"], by_layer) == (200, hls.key, False)
    assert get(fast, url)[1]  # remembered again


def test_what_the_layer_does_not_answer_goes_to_django(ready, fast):
    item, hls, viewer, url = ready
    get(fast, url)
    expired = key_url(item.content, hls, signed(item.content, viewer.pk, expires=1))
    cases = {
        url.split("?")[0]: 401,  # no token
        url + "&x=1": 200,  # another parameter: Django reads the query
        expired: 403,
        url.replace(str(hls.kid), "00000000-0000-4000-8000-000000000000"): 404,  # no such key
    }
    for path, status in cases.items():
        answer, by_layer = get(fast, path)
        assert (answer["status"], by_layer) == (status, False), path
    head, by_layer = get(fast, url, method="HEAD")
    assert (head["status"], head["body"], by_layer) == (200, b"", False)


def test_a_key_this_process_has_not_read_goes_to_django(ready, fast):
    _item, hls, _viewer, url = ready
    get(fast, url)
    KEYS.clear()  # another web process remembered the yes; this one never unwrapped the key
    answer, by_layer = get(fast, url)
    assert (answer["status"], answer["body"], by_layer) == (200, hls.key, False)
    assert get(fast, url)[1]


def test_with_redis_away_keys_are_djangos_and_still_answered(ready, fast, settings):
    _item, hls, _viewer, url = ready
    settings.CACHES = cache_config(f"redis://127.0.0.1:{free_port()}/0", folder=None)
    for _ in range(2):
        answer, by_layer = get(fast, url)
        assert (answer["status"], answer["body"], by_layer) == (200, hls.key, False)


def test_without_remembered_decisions_every_key_is_djangos(ready, fast, settings):
    settings.KEY_DECISION_SECONDS = 0
    _item, hls, _viewer, url = ready
    for _ in range(2):
        answer, by_layer = get(fast, url)
        assert (answer["status"], answer["body"], by_layer) == (200, hls.key, False)
