"""Security headers and the CSP, rate limits with Retry-After, CSRF for session writes and the
CORS allowlist. The password throttle (the admin's login among its doors) is tested in
tests/access/test_password_throttle.py."""

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from apps.content.models import ContentStatus
from streamgate.security import content_security_policy
from tests.factories import ContentFactory, CreatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def throttled(monkeypatch):
    """Tight DRF rates for one test, with the counters emptied before and after."""

    def tighten(**rates):
        monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
        cache.delete_pattern("throttle_*")

    yield tighten
    cache.delete_pattern("throttle_*")


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_pages_carry_a_strict_csp_and_the_other_headers():
    content = ContentFactory(status=ContentStatus.READY)
    for url in ("/", "/signin/", f"/watch/{content.id}/"):
        response = Client().get(url)
        policy = directives(response)
        assert policy["script-src"] == "'self'", url
        assert policy["object-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert "blob:" in policy["worker-src"]  # hls.js's worker
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "camera=()" in response["Permissions-Policy"]
    embedded = Client().get(f"/watch/{content.id}/?embed=1")
    assert directives(embedded)["frame-ancestors"] == "*"


def test_json_and_pages_with_inline_scripts_get_no_csp(client):
    assert "Content-Security-Policy" not in client.get("/api/v1/contents/")
    assert "Content-Security-Policy" not in client.get("/api/docs/")
    assert "Content-Security-Policy" not in client.get("/admin/login/")
    assert "Permissions-Policy" in client.get("/api/v1/contents/")


def test_the_csp_admits_the_storage_that_presigned_urls_point_at(settings):
    settings.STREAM_MEDIA_ORIGINS = ["http://minio:9000"]
    policy = content_security_policy(frameable=False)
    for directive in ("img-src", "media-src", "connect-src"):
        assert f"{directive} " in policy
    assert "media-src 'self' blob: http://minio:9000" in policy
    assert "connect-src 'self' http://minio:9000" in policy


def test_playback_is_rate_limited_with_retry_after(throttled):
    throttled(playback="2/min")
    content = ContentFactory(status=ContentStatus.DRAFT)
    url = f"/api/v1/contents/{content.id}/playback/"
    codes = [Client().post(url).status_code for _ in range(3)]
    assert codes == [404, 404, 429]  # a draft is not found; then the limit
    limited = Client().post(url)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0


def test_upload_creation_is_rate_limited_but_discovery_is_not(throttled, client_for):
    throttled(uploads="1/min")
    api = client_for(CreatorFactory())
    headers = {"HTTP_TUS_RESUMABLE": "1.0.0", "HTTP_UPLOAD_LENGTH": "10"}
    assert api.post("/api/v1/uploads/", **headers).status_code == 201
    limited = api.post("/api/v1/uploads/", **headers)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert limited["Tus-Resumable"] == "1.0.0"
    assert all(api.options("/api/v1/uploads/").status_code == 204 for _ in range(3))


def test_session_writes_need_the_csrf_token():
    creator = CreatorFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(creator)
    refused = client.post("/api/v1/contents/", {"title": "x"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        "/api/v1/contents/",
        {"title": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert accepted.status_code == 201


def test_cors_allows_only_listed_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://player.example"]
    allowed = Client().get("/api/v1/contents/", HTTP_ORIGIN="https://player.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://player.example"
    other = Client().get("/api/v1/contents/", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other
