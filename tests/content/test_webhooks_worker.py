"""Webhooks delivered by a real Celery worker (the webhooks queue, threads) to real receivers:
retries after 500s and timeouts with growing delays, per-content order, and a slow endpoint
that does not hold up the others."""

import json
import time
from itertools import pairwise

import pytest
from standardwebhooks import Webhook

from apps.content.models import ContentStatus
from apps.content.services import content_create, content_status_set
from apps.content.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.content.webhooks.services import endpoint_create
from tests.support.webhook_receiver import receiver, webhook_worker

pytestmark = pytest.mark.django_db(transaction=True)
EVENTS = ["content.created", "content.ready", "content.failed"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("webhooks-worker")
    with webhook_worker(
        folder,
        folder / "worker.log",
        WEBHOOK_RETRY_SCHEDULE="0.5,1,2",
        WEBHOOK_RETRY_JITTER="0",
        WEBHOOK_TIMEOUT="1",
    ):
        yield folder / "worker.log"


@pytest.fixture
def local(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


def verified(got, endpoint):
    return [Webhook(endpoint.secret).verify(item.body, item.headers) for item in got]


def test_retries_after_500s_and_timeouts_with_growing_delays(worker, local, creator):
    def failing_thrice(received, index):
        return (500 if index < 3 else 200), 0.0, {}

    def slow_thrice(received, index):
        return 200, (1.6 if index < 3 else 0.0), {}  # past WEBHOOK_TIMEOUT (1 s) thrice

    with receiver(respond=failing_thrice) as failing, receiver(respond=slow_thrice) as slow:
        errors = endpoint_create(owner=creator, url=failing.url(), events=EVENTS)
        timeouts = endpoint_create(owner=creator, url=slow.url(), events=EVENTS)
        content_create(owner=creator, title="retried")
        got_errors = failing.wait(4, timeout=40)
        got_timeouts = slow.wait(4, timeout=40)
    for got, endpoint in ((got_errors, errors), (got_timeouts, timeouts)):
        assert [p["type"] for p in verified(got, endpoint)] == ["content.created"] * 4
        assert len({item.headers["webhook-id"] for item in got}) == 1  # one message, retried
        gaps = [later.at - earlier.at for earlier, later in pairwise(got)]
        assert gaps == sorted(gaps), gaps
        assert gaps[2] > 1.5 * gaps[0], gaps
    # 500s: the schedule itself (0.5, 1, 2 s); timeouts: the schedule plus the 1 s waited.
    for waited, scheduled in zip(
        (b.at - a.at for a, b in pairwise(got_errors)), (0.5, 1, 2), strict=True
    ):
        assert scheduled <= waited < scheduled + 1, (waited, scheduled)
    for waited, scheduled in zip(
        (b.at - a.at for a, b in pairwise(got_timeouts)), (0.5, 1, 2), strict=True
    ):
        assert scheduled + 1 <= waited < scheduled + 2, (waited, scheduled)
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = {d.endpoint_id: d for d in WebhookDelivery.objects.all()}
    assert (log[errors.id].attempts, log[errors.id].status) == (4, "succeeded")
    assert (log[timeouts.id].attempts, log[timeouts.id].status) == (4, "succeeded")


def test_events_arrive_in_order_per_content_and_a_slow_endpoint_holds_up_nobody(
    worker, local, creator
):
    def slow(received, index):
        return 200, 0.8, {}

    with receiver() as fast_hooks, receiver(respond=slow) as slow_hooks:
        fast = endpoint_create(owner=creator, url=fast_hooks.url(), events=EVENTS)
        sluggish = endpoint_create(owner=creator, url=slow_hooks.url(), events=EVENTS)
        contents = [content_create(owner=creator, title=f"c{n}") for n in range(3)]
        for status in (ContentStatus.FAILED, ContentStatus.READY):
            for content in contents:
                content_status_set(content=content, status=status, error="x")
        emitted = time.time()
        got_fast = fast_hooks.wait(9, timeout=20)
        fast_done = max(item.at for item in got_fast)
        slow_so_far = len(slow_hooks.received)
        got_slow = slow_hooks.wait(9, timeout=30)
    # The fast endpoint had everything within moments, while the slow one was still at it.
    assert fast_done - emitted < 3, fast_done - emitted
    assert slow_so_far < 9
    for got, endpoint in ((got_fast, fast), (got_slow, sluggish)):
        per_content: dict[str, list[str]] = {}
        for payload in verified(got, endpoint):
            per_content.setdefault(payload["data"]["content_id"], []).append(payload["type"])
        assert per_content == {
            str(c.id): ["content.created", "content.failed", "content.ready"] for c in contents
        }
    first_ready = json.loads(got_fast[-1].body)
    assert first_ready["data"]["status"] == "ready"
