"""Delivering webhooks to real HTTP receivers, one pump run at a time in this process:
signatures (Standard Webhooks' own verifier), rotation overlap, retries and giving up,
disabling with a notice, the SSRF guard (with a real DNS server), per-content order."""

import ipaddress
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.content.models import ContentStatus
from apps.content.services import content_create, content_delete, content_status_set
from apps.content.webhooks.guard import address_kind
from apps.content.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from apps.content.webhooks.pump import pump_run
from apps.content.webhooks.services import (
    deliveries_purge,
    endpoint_create,
    endpoint_secret_rotate,
    webhook_event_emit,
    webhook_test_send,
)
from tests.support.webhook_receiver import dns_server, receiver

pytestmark = pytest.mark.django_db
ALL = ["content.created", "content.ready", "content.failed", "content.deleted"]


@pytest.fixture
def local(settings):
    """Endpoints on this machine's loopback receivers are allowed (local development)."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_JITTER = 0


def endpoint_at(url, owner, events=ALL):
    return endpoint_create(owner=owner, url=url, events=events)


def pump(endpoint):
    return pump_run(endpoint_id=str(endpoint.id))


def test_every_delivery_verifies_with_the_standard_webhooks_verifier(local, creator):
    with receiver() as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        content = content_create(owner=creator, title="First light")
        assert pump(endpoint) == 1
        got = hooks.wait(1)[0]
    payload = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload["type"] == "content.created"
    assert payload["data"]["content_id"] == str(content.id)
    assert payload["data"]["title"] == "First light"
    assert payload["data"]["status"] == "draft"
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{hooks.port}"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.last_response == '{"ok": true}'
    assert delivery.last_latency_ms is not None
    assert delivery.next_attempt_at is None


def test_a_forged_or_altered_delivery_fails_verification(local, creator):
    with receiver() as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        content_create(owner=creator, title="x")
        pump(endpoint)
        got = hooks.wait(1)[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(got.body.replace(b'"x"', b'"y"'), got.headers)
    other = endpoint_create(owner=creator, url="https://a.example/x", events=ALL)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(got.body, got.headers)


def test_rotation_signs_with_both_secrets_during_the_overlap_only(local, creator):
    with receiver() as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        old = endpoint.secret
        new = endpoint_secret_rotate(endpoint=endpoint).secret
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        during = hooks.wait(1)[0]
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
        )
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        after = hooks.wait(2)[1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(during.body, during.headers)["type"] == "webhook.test"
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_failure_is_retried_on_the_schedule_then_given_up(local, creator, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0]
    with receiver(respond=lambda r, i: (500, 0, {})) as hooks:
        hooks.reply = b"x" * 5000
        endpoint = endpoint_at(hooks.url(), creator)
        webhook_test_send(endpoint=endpoint)
        assert pump(endpoint) == 3  # both retries were due at once
        hooks.wait(3)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert (delivery.attempts, delivery.last_status_code) == (3, 500)
    assert delivery.last_error == "The endpoint answered 500."
    assert delivery.last_response == "x" * 1024  # an excerpt
    assert delivery.finished_at is not None


def test_a_retry_waits_its_backoff(local, creator, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [300, 1800]
    with receiver(respond=lambda r, i: (503, 0, {})) as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        webhook_test_send(endpoint=endpoint)
        before = timezone.now()
        assert pump(endpoint) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert 299 <= (delivery.next_attempt_at - before).total_seconds() <= 302
    assert pump(endpoint) == 0  # not due yet


def test_jitter_spreads_retries(local, creator, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [1000]
    settings.WEBHOOK_RETRY_JITTER = 0.2
    with receiver(respond=lambda r, i: (500, 0, {})) as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        for _ in range(8):
            webhook_test_send(endpoint=endpoint)
        pump(endpoint)
    delays = {
        round((d.next_attempt_at - d.last_attempt_at).total_seconds())
        for d in WebhookDelivery.objects.all()
    }
    assert len(delays) > 1
    assert all(790 <= delay <= 1210 for delay in delays)


def test_an_endpoint_failing_for_days_is_disabled_and_its_owner_told(
    local, creator, settings, django_capture_on_commit_callbacks
):
    creator.email = "maker@example.com"
    creator.save()
    settings.WEBHOOK_DISABLE_AFTER_DAYS = 5
    settings.WEBHOOK_RETRY_SCHEDULE = [3600]
    with receiver(respond=lambda r, i: (500, 0, {})) as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        endpoint.refresh_from_db()
        assert endpoint.enabled
        assert endpoint.failing_since is not None
        # Four days and 23 hours of failures: still on.
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            failing_since=timezone.now() - timedelta(days=4, hours=23)
        )
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        with transaction.atomic():
            webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        endpoint.refresh_from_db()
        assert endpoint.enabled
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            failing_since=timezone.now() - timedelta(days=5, minutes=1)
        )
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            pump(endpoint)
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason.startswith("Disabled automatically")
    assert "The endpoint answered 500." in endpoint.disabled_reason
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    assert pump(endpoint) == 0
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    assert notice.to == ["maker@example.com"]
    assert "disabled" in notice.subject
    assert endpoint.url in notice.body
    assert endpoint.disabled_reason in notice.body
    assert "/studio/webhooks/" in notice.body


def test_a_success_ends_the_failure_streak(local, creator):
    with receiver() as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            failing_since=timezone.now() - timedelta(days=3)
        )
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


# --- the SSRF guard (WEBHOOK_ALLOW_PRIVATE off) ---------------------------------------------


def loopback_endpoint(owner, url):
    """Saved as make run would (private allowed), then sent to with the guard on."""
    return WebhookEndpoint.objects.create(owner=owner, url=url, events=ALL, secret="whsec_AAAA")


def refused(delivery):
    assert delivery.status == DeliveryStatus.FAILED  # not retried: the guard's answer stands
    assert delivery.attempts == 1
    assert delivery.last_status_code is None
    return delivery.last_error


def test_no_delivery_to_a_loopback_address(creator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with receiver() as hooks:
        for url in (hooks.url(), f"http://[::ffff:127.0.0.1]:{hooks.port}/hook"):
            endpoint = loopback_endpoint(creator, url)
            webhook_test_send(endpoint=endpoint)
            pump(endpoint)
        assert hooks.received == []
    errors = [refused(d) for d in WebhookDelivery.objects.order_by("id")]
    assert errors[0].startswith("Refused: 127.0.0.1 is a loopback address.")
    assert "loopback" in errors[1]


def test_no_delivery_to_a_public_name_that_resolves_to_loopback(creator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with receiver() as hooks, dns_server({"hooks.example.com": "127.0.0.1"}) as nameserver:
        settings.WEBHOOK_DNS_NAMESERVERS = [nameserver]
        endpoint = loopback_endpoint(creator, f"http://hooks.example.com:{hooks.port}/hook")
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        assert hooks.received == []
    assert refused(WebhookDelivery.objects.get()).startswith(
        "Refused: hooks.example.com resolves to 127.0.0.1, which is a loopback address."
    )


def test_a_name_is_resolved_once_and_the_checked_address_is_used(creator, settings):
    """127.0.0.2 stands for a public address here (allowed by WEBHOOK_ALLOWED_NETWORKS)."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with (
        receiver(host="127.0.0.2") as hooks,
        dns_server({"hooks.example.com": "127.0.0.2"}) as nameserver,
    ):
        settings.WEBHOOK_DNS_NAMESERVERS = [nameserver]
        endpoint = endpoint_at(f"http://hooks.example.com:{hooks.port}/hook", creator)
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
        got = hooks.wait(1)[0]
    assert got.headers["host"] == f"hooks.example.com:{hooks.port}"
    assert Webhook(endpoint.secret).verify(got.body, got.headers)["type"] == "webhook.test"


def test_a_name_that_does_not_resolve_is_retried(creator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with dns_server({}) as nameserver:
        settings.WEBHOOK_DNS_NAMESERVERS = [nameserver]
        endpoint = endpoint_at("https://gone.example.com/hook", creator)
        webhook_test_send(endpoint=endpoint)
        pump(endpoint)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "gone.example.com" in delivery.last_error


def test_a_redirect_to_loopback_is_not_followed(creator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with receiver() as inner:
        target = inner.url()
        with receiver(host="127.0.0.2", respond=lambda r, i: (302, 0, {"Location": target})) as hop:
            endpoint = endpoint_at(hop.url(), creator)
            webhook_test_send(endpoint=endpoint)
            pump(endpoint)
            hop.wait(1)
        assert inner.received == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status_code == 302
    assert delivery.last_error.startswith(f"Redirect (302) to '{target}' not followed")
    assert delivery.status == DeliveryStatus.PENDING  # a fixed URL can still receive it


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to judge, not to bind
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_address_kinds(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


# --- events: in the caller's transaction, in order ------------------------------------------


def test_events_of_a_rolled_back_write_are_never_written(local, creator):
    endpoint_create(owner=creator, url="https://a.example/x", events=ALL)

    def write_then_fail():
        with transaction.atomic():
            content_create(owner=creator, title="never")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_status_events_are_announced_once_per_arrival(creator):
    endpoint = endpoint_create(owner=creator, url="https://a.example/x", events=ALL)
    content = content_create(owner=creator, title="t")
    content_status_set(content=content, status=ContentStatus.PROCESSING)
    content_status_set(content=content, status=ContentStatus.FAILED, error="bad file")
    content_status_set(content=content, status=ContentStatus.FAILED, error="bad file")
    content_status_set(content=content, status=ContentStatus.QUEUED)
    content_status_set(content=content, status=ContentStatus.READY)
    content_delete(content=content)
    events = [
        json.loads(d.event.body)
        for d in WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id")
    ]
    assert [e["type"] for e in events] == [
        "content.created",
        "content.failed",
        "content.ready",
        "content.deleted",
    ]
    assert events[1]["data"]["error"] == "bad file"
    assert events[1]["data"]["error_kind"] == ""
    assert "error" not in events[2]["data"]
    body = " ".join(json.dumps(e) for e in events)
    assert "whsec_" not in body
    assert "/stream/" not in body


def test_only_subscribed_enabled_endpoints_of_the_owner_get_events(creator):
    wants = endpoint_create(owner=creator, url="https://a.example/x", events=["content.ready"])
    other = endpoint_create(owner=creator, url="https://b.example/x", events=["content.created"])
    off = endpoint_create(owner=creator, url="https://c.example/x", events=["content.created"])
    WebhookEndpoint.objects.filter(pk=off.pk).update(enabled=False)
    content_create(owner=creator, title="t")
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [other.id]
    assert wants.deliveries.count() == 0


def test_a_keyed_event_is_written_once(creator):
    endpoint_create(owner=creator, url="https://a.example/x", events=["access.purchased"])
    first = webhook_event_emit(
        event_type="access.purchased", owner_id=creator.pk, data={}, key="k1"
    )
    again = webhook_event_emit(
        event_type="access.purchased", owner_id=creator.pk, data={}, key="k1"
    )
    assert first is not None
    assert again is None
    assert WebhookDelivery.objects.count() == 1


def test_a_burst_queues_one_pump_per_endpoint_not_one_per_event(
    creator, django_capture_on_commit_callbacks
):
    """Events wake an endpoint's pump only when none works it and none was just queued: a
    working pump looks again after it lets go (the benchmark's burst queued 10 per event)."""
    from apps.content.models import OutboxMessage

    pump_task = "apps.content.webhooks.tasks.webhook_endpoint_pump"
    first = endpoint_create(owner=creator, url="https://a.example/x", events=["content.ready"])
    second = endpoint_create(owner=creator, url="https://b.example/x", events=["content.ready"])

    def burst(count):
        with django_capture_on_commit_callbacks() as committed:
            for n in range(count):
                webhook_event_emit(event_type="content.ready", owner_id=creator.pk, data={"n": n})
        before = OutboxMessage.objects.filter(task=pump_task).count()
        with django_capture_on_commit_callbacks():  # the sends themselves are not run
            for callback in committed:
                callback()
        return OutboxMessage.objects.filter(task=pump_task).count() - before

    assert burst(5) == 2  # one each
    assert burst(5) == 0  # queued, not started yet
    # One whose pump works (holds the lease) gets none; one whose queued pump is overdue
    # (lost with its worker, perhaps) gets another.
    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=first.pk).update(
        pump_token="x", pump_expires_at=now + timedelta(minutes=1)
    )
    WebhookEndpoint.objects.filter(pk=second.pk).update(pump_queued_at=now - timedelta(seconds=6))
    assert burst(3) == 1
    assert WebhookDelivery.objects.count() == 2 * 13


def test_a_content_waits_for_its_earlier_event_others_do_not(local, creator, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [3600]
    failing = {"once": True}

    def respond(received, index):
        data = json.loads(received.body)["data"]
        if data["title"] == "A" and failing.pop("once", False):
            return 500, 0, {}
        return 200, 0, {}

    with receiver(respond=respond) as hooks:
        endpoint = endpoint_at(hooks.url(), creator)
        a = content_create(owner=creator, title="A")
        b = content_create(owner=creator, title="B")
        content_status_set(content=a, status=ContentStatus.READY)
        content_status_set(content=b, status=ContentStatus.READY)
        pump(endpoint)  # A created fails; A ready waits behind it; B's two go
        seen = [
            (json.loads(r.body)["data"]["title"], json.loads(r.body)["type"]) for r in hooks.wait(3)
        ]
        assert seen == [("A", "content.created"), ("B", "content.created"), ("B", "content.ready")]
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(
            next_attempt_at=timezone.now()
        )
        pump(endpoint)
        seen = [
            (json.loads(r.body)["data"]["title"], json.loads(r.body)["type"]) for r in hooks.wait(5)
        ]
    assert seen[3:] == [("A", "content.created"), ("A", "content.ready")]


def test_old_deliveries_are_purged(creator, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    endpoint = endpoint_create(owner=creator, url="https://a.example/x", events=ALL)
    old = webhook_test_send(endpoint=endpoint)
    recent = webhook_test_send(endpoint=endpoint)
    pending = webhook_test_send(endpoint=endpoint)
    long_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk=old.pk).update(status="succeeded", finished_at=long_ago)
    WebhookEvent.objects.filter(pk=old.event_id).update(created_at=long_ago)
    WebhookDelivery.objects.filter(pk=recent.pk).update(
        status="succeeded", finished_at=timezone.now()
    )
    assert deliveries_purge() == 1
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert not WebhookEvent.objects.filter(pk=old.event_id).exists()
