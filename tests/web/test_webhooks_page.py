"""The studio's webhooks pages: add (secret once), errors, enable/disable, rotate, test,
the log and redelivery; someone else's endpoint is 404; forms carry the CSRF token."""

import re

import pytest
from django.test import Client

from apps.content.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.content.webhooks.services import endpoint_create
from tests.factories import CreatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(creator):
    client = Client()
    client.force_login(creator)
    return client


def test_adding_an_endpoint_shows_its_secret_once(browser):
    page = browser.get("/studio/webhooks/")
    assert page.status_code == 200
    assert "csrfmiddlewaretoken" in page.content.decode()
    added = browser.post(
        "/studio/webhooks/",
        {"url": "https://hooks.example.com/x", "events": ["content.ready", "content.failed"]},
    )
    assert added.status_code == 201
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in added.content.decode()
    again = browser.get("/studio/webhooks/").content.decode()
    assert endpoint.secret not in again
    assert "https://hooks.example.com/x" in again
    assert added["Cache-Control"] == "no-store"


def test_a_refused_endpoint_says_why_and_keeps_the_form(browser):
    page = browser.post(
        "/studio/webhooks/", {"url": "http://127.0.0.1/x", "events": ["content.ready"]}
    )
    assert page.status_code == 400
    text = page.content.decode()
    assert 'role="alert"' in text
    assert "loopback" in text
    assert 'value="http://127.0.0.1/x"' in text
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_actions(browser, creator):
    endpoint = endpoint_create(
        owner=creator, url="https://hooks.example.com/x", events=["content.ready"]
    )
    url = f"/studio/webhooks/{endpoint.id}/"
    assert browser.post(url, {"action": "test"}).status_code == 200
    assert WebhookDelivery.objects.count() == 1
    page = browser.get(url).content.decode()
    assert "webhook.test" in page
    assert "Redeliver" in page
    delivery = WebhookDelivery.objects.get()
    browser.post(url, {"action": "redeliver", "delivery": delivery.id})
    assert WebhookDelivery.objects.count() == 2
    rotated = browser.post(url, {"action": "rotate"}).content.decode()
    endpoint.refresh_from_db()
    assert endpoint.secret in rotated
    assert endpoint.previous_secret
    browser.post(url, {"action": "disable"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    refused = browser.post(url, {"action": "test"})
    assert refused.status_code == 409
    assert "enable it first" in refused.content.decode()
    browser.post(url, {"action": "enable"})
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert browser.post(url, {"action": "nonsense"}).status_code == 400
    assert browser.post(url, {"action": "redeliver", "delivery": "x"}).status_code == 404
    assert browser.post(url, {"action": "delete"}).status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_a_disabled_endpoint_shows_why(browser, creator):
    endpoint = endpoint_create(
        owner=creator, url="https://hooks.example.com/x", events=["content.ready"]
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason="Disabled automatically on 2026-01-01"
    )
    for url in ("/studio/webhooks/", f"/studio/webhooks/{endpoint.id}/"):
        assert "Disabled automatically on 2026-01-01" in browser.get(url).content.decode()


def test_another_creators_endpoint_is_404(browser):
    other = endpoint_create(
        owner=CreatorFactory(), url="https://a.example/x", events=["content.ready"]
    )
    assert browser.get(f"/studio/webhooks/{other.id}/").status_code == 404
    assert browser.post(f"/studio/webhooks/{other.id}/", {"action": "delete"}).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=other.pk).exists()


def test_posts_need_the_csrf_token(creator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(creator)
    page = client.get("/studio/webhooks/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = {"url": "https://hooks.example.com/x", "events": ["content.ready"]}
    assert client.post("/studio/webhooks/", body).status_code == 403
    assert (
        client.post("/studio/webhooks/", {**body, "csrfmiddlewaretoken": token}).status_code == 201
    )


def test_viewers_and_anonymous_are_kept_out(viewer):
    assert Client().get("/studio/webhooks/").status_code == 302
    client = Client()
    client.force_login(viewer)
    assert client.get("/studio/webhooks/").status_code == 403
