"""The webhook endpoints API: creation (secret once), validation errors, ownership, rotation,
test events, the delivery log and redelivery."""

import pytest

from apps.content.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from apps.content.webhooks.services import endpoint_create
from tests.factories import CreatorFactory

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/streamgate"


@pytest.fixture
def api(creator, client_for):
    return client_for(creator)


def create(api, **body):
    return api.post(
        "/api/v1/webhooks/", {"url": URL, "events": ["content.ready"], **body}, format="json"
    )


def test_creation_answers_the_secret_once_and_lists_without_it(api):
    response = create(api, description="my site", events=["content.ready", "content.created"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["content.created", "content.ready"]  # our order
    assert body["description"] == "my site"
    assert body["enabled"] is True
    assert body["disabled_reason"] == ""
    listed = api.get("/api/v1/webhooks/").json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"/api/v1/webhooks/{body['id']}/").json()


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        ({"events": ["content.ready", "video.exploded"]}, "events", "video.exploded"),
        ({"events": ["webhook.test"]}, "events", "Unknown event"),
        ({"url": "ftp://hooks.example.com/x"}, "url_scheme", "https://"),
        ({"url": "javascript:alert(1)"}, "url_scheme", "https://"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url_credentials", "password"),
        ({"url": "http://127.0.0.1:9000/x"}, "url_private", "loopback"),
        ({"url": "http://[::ffff:127.0.0.1]/x"}, "url_private", "loopback"),
        ({"url": "http://169.254.169.254/latest"}, "url_private", "link-local"),
        ({"url": "http://10.1.2.3/x"}, "url_private", "private"),
        ({"url": "http://localhost:8000/x"}, "url_private", "loopback"),
        ({"url": "https://hooks.example.com:99999/x"}, "url", "not valid"),
        ({"url": "https:///nohost"}, "url", "no host"),
        ({"url": "https://hooks.example.com/a b"}, "url", "spaces"),
    ],
)
def test_bad_endpoints_are_refused_with_a_reason(api, body, reason, words):
    response = create(api, **body)
    assert response.status_code == 400, response.json()
    assert response.json()["reason"] == reason
    assert words in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"events": []}, {"events": "content.ready"}, {"url": ""}, {"description": "x" * 201}],
)
def test_malformed_bodies_are_400(api, body):
    response = create(api, **body)
    assert response.status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_are_allowed_when_the_setting_says_so(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert create(api, url="http://127.0.0.1:9000/x").status_code == 201


def test_allowed_networks_let_chosen_private_addresses_in(api, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.9.0.0/16"]
    assert create(api, url="http://10.9.1.1/x").status_code == 201
    assert create(api, url="http://10.8.1.1/x").json()["reason"] == "url_private"


def test_viewers_cannot_register(viewer, client_for):
    response = create(client_for(viewer))
    assert response.status_code == 403
    assert response.json()["reason"] == "not_a_creator"


def test_anonymous_gets_401(api_client):
    assert api_client.get("/api/v1/webhooks/").status_code == 401


def test_another_creators_endpoint_is_404_everywhere(api, creator):
    other = endpoint_create(owner=CreatorFactory(), url=URL, events=["content.ready"])
    delivery = WebhookDelivery.objects.create(
        endpoint=other,
        event=other.owner.webhook_events.create(type="content.ready", body="{}"),
    )
    base = f"/api/v1/webhooks/{other.id}/"
    assert api.get(base).status_code == 404
    assert api.patch(base, {"enabled": False}, format="json").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.post(base + "rotate-secret/").status_code == 404
    assert api.post(base + "test/").status_code == 404
    assert api.get(base + "deliveries/").status_code == 404
    assert api.post(base + f"deliveries/{delivery.id}/redeliver/").status_code == 404
    assert api.get("/api/v1/webhooks/").json() == []
    # Nor may one's own endpoint redeliver another's delivery.
    mine = create(api).json()["id"]
    response = api.post(f"/api/v1/webhooks/{mine}/deliveries/{delivery.id}/redeliver/")
    assert response.status_code == 404
    assert response.json()["reason"] == "not_found"
    assert api.get("/api/v1/webhooks/not-a-uuid/").status_code == 404


def test_staff_see_only_their_own(staff, client_for, creator):
    endpoint_create(owner=creator, url=URL, events=["content.ready"])
    assert client_for(staff).get("/api/v1/webhooks/").json() == []


def test_patch_changes_and_validates(api):
    endpoint_id = create(api).json()["id"]
    url = f"/api/v1/webhooks/{endpoint_id}/"
    changed = api.patch(url, {"events": ["content.failed"], "enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["events"] == ["content.failed"]
    assert changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"] == "Disabled by its owner."
    again = api.patch(url, {"enabled": True}, format="json").json()
    assert (again["enabled"], again["disabled_reason"]) == (True, "")
    bad = api.patch(url, {"url": "http://[::1]/x"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["reason"] == "url_private"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_rotation_answers_a_new_secret_and_the_overlap(api, settings):
    settings.WEBHOOK_SECRET_OVERLAP_HOURS = 24
    created = create(api).json()
    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.previous_secret == created["secret"]
    assert body["previous_secret_expires_at"] is not None


def test_test_event_and_redelivery_are_logged(api):
    endpoint_id = create(api).json()["id"]
    sent = api.post(f"/api/v1/webhooks/{endpoint_id}/test/")
    assert sent.status_code == 202
    assert sent.json()["event_type"] == "webhook.test"
    assert sent.json()["status"] == "pending"
    log = api.get(f"/api/v1/webhooks/{endpoint_id}/deliveries/").json()
    assert log["count"] == 1
    entry = log["results"][0]
    assert entry["event_id"].startswith("msg_")
    again = api.post(f"/api/v1/webhooks/{endpoint_id}/deliveries/{entry['id']}/redeliver/")
    assert again.status_code == 202
    assert again.json()["event_id"] == entry["event_id"]  # the same webhook-id
    assert again.json()["id"] != entry["id"]
    log = api.get(f"/api/v1/webhooks/{endpoint_id}/deliveries/").json()
    assert [item["id"] for item in log["results"]] == [again.json()["id"], entry["id"]]


def test_a_disabled_endpoint_refuses_tests_and_redeliveries_with_409(api):
    endpoint_id = create(api).json()["id"]
    delivery_id = api.post(f"/api/v1/webhooks/{endpoint_id}/test/").json()["id"]
    api.patch(f"/api/v1/webhooks/{endpoint_id}/", {"enabled": False}, format="json")
    response = api.post(f"/api/v1/webhooks/{endpoint_id}/test/")
    assert response.status_code == 409
    assert response.json()["reason"] == "endpoint_disabled"
    redeliver = api.post(f"/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver/")
    assert redeliver.status_code == 409
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1


def test_too_many_endpoints(api, settings):
    settings.WEBHOOK_ENDPOINTS_PER_USER = 2
    assert create(api).status_code == 201
    assert create(api).status_code == 201
    response = create(api)
    assert response.status_code == 400
    assert response.json()["reason"] == "too_many_endpoints"


def test_views_declare_the_manage_scope():
    from apps.content.webhooks.api import views

    classes = [
        views.WebhookListView,
        views.WebhookDetailView,
        views.WebhookRotateView,
        views.WebhookTestView,
        views.WebhookDeliveriesView,
        views.WebhookRedeliverView,
    ]
    assert all(view.required_scope == "manage" for view in classes)


def test_the_schema_documents_the_endpoints(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    assert "/api/v1/webhooks/{endpoint_id}/rotate-secret/" in schema["paths"]
    assert "Webhooks" in schema["info"]["description"]


def test_admin_lists_endpoints_without_secrets_and_deliveries_read_only(admin_client, creator):
    endpoint = endpoint_create(owner=creator, url=URL, events=["content.ready"])
    from apps.content.webhooks.services import webhook_test_send

    delivery = webhook_test_send(endpoint=endpoint)
    page = admin_client.get(f"/admin/content/webhookendpoint/{endpoint.id}/change/")
    assert page.status_code == 200
    assert endpoint.secret not in page.content.decode()
    assert admin_client.get("/admin/content/webhookdelivery/").status_code == 200
    detail = admin_client.get(f"/admin/content/webhookdelivery/{delivery.id}/change/")
    assert detail.status_code == 200
    assert 'name="status"' not in detail.content.decode()  # read-only
    assert (
        admin_client.post(f"/admin/content/webhookdelivery/{delivery.id}/delete/").status_code
        == 403
    )
