"""Under /api/, no request gets a 500, and every error is JSON with a reason, whoever answers:
DRF, Django around it (URLs, Host, body size), or an unhandled exception. With DEBUG on too,
as under `make run`."""

import json

import pytest
from django.test import Client

from apps.content.models import Content
from streamgate.parsers import MAX_JSON_DEPTH, json_depth
from tests.factories import ContentFactory, CreatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def error(response, status: int, reason: str) -> dict:
    """The response's JSON body, after checking it is the error expected."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["reason"] == reason
    assert set(body) == {"detail", "reason"}
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- JSON bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/auth/siwe/verify/", "/api/v1/auth/solana/verify/"])
def test_deeply_nested_json_is_400_not_a_recursion_error(debug, path):
    response = Client().post(path, nested(5000), content_type="application/json")
    body = error(response, 400, "json_too_deep")
    assert body["detail"] == f"JSON nested deeper than {MAX_JSON_DEPTH} levels."


@pytest.mark.parametrize("depth", [5000, 950])
def test_deeply_nested_content_patch_is_400(debug, client_for, depth):
    # 950 levels parse, then overflowed the stack when DRF's JSONField dumped the gate again.
    content = ContentFactory(title="Before")
    body = f'{{"gate": {nested(depth)}}}'
    response = client_for(content.owner).patch(
        f"/api/v1/contents/{content.id}/", body, content_type="application/json"
    )
    error(response, 400, "json_too_deep")
    content.refresh_from_db()
    assert content.title == "Before"
    assert content.gate is None


def test_json_as_deep_as_the_limit_still_parses(client_for):
    content = ContentFactory()
    body = f'{{"title": {nested(MAX_JSON_DEPTH - 1)}}}'
    response = client_for(content.owner).patch(
        f"/api/v1/contents/{content.id}/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"title": ["Not a valid string."]}  # reached the serializer


def test_depth_counts_brackets_outside_strings_only():
    assert json_depth('{"a": [1, {"b": "[[[{{{"}], "c": "\\"]]]"}') == 3
    assert json_depth("[]") == 1
    assert json_depth('"plain"') == 0


def test_a_body_over_the_memory_limit_is_413(debug, client_for):
    content = ContentFactory(title="Before")
    body = json.dumps({"title": "a" * 3_000_000})
    response = client_for(content.owner).patch(
        f"/api/v1/contents/{content.id}/", body, content_type="application/json"
    )
    body = error(response, 413, "body_too_large")
    assert body["detail"] == "The request body is larger than 2621440 bytes."
    content.refresh_from_db()
    assert content.title == "Before"


def test_a_form_with_too_many_fields_is_400(debug):
    fields = "&".join(f"f{i}=1" for i in range(1200))
    response = Client().post(
        "/api/v1/auth/siwe/verify/", fields, content_type="application/x-www-form-urlencoded"
    )
    body = error(response, 400, "too_many_fields_sent")
    assert body["detail"] == "More than 1000 form fields."


def test_malformed_json_keeps_drfs_message_and_gets_a_reason():
    response = Client().post("/api/v1/auth/siwe/verify/", '{"a":', content_type="application/json")
    body = error(response, 400, "parse_error")
    assert body["detail"].startswith("JSON parse error - Expecting value")


# --- DRF's own errors carry their code as the reason --------------------------------------------


def test_drf_errors_get_their_code_as_reason(client_for):
    content = ContentFactory()
    owner = client_for(content.owner)
    detail = f"/api/v1/contents/{content.id}/"
    assert error(owner.put(detail), 405, "method_not_allowed")["detail"] == (
        'Method "PUT" not allowed.'
    )
    anonymous = Client().post("/api/v1/contents/", {}, content_type="application/json")
    error(anonymous, 401, "not_authenticated")
    plain = owner.patch(detail, "x", content_type="text/plain")
    error(plain, 415, "unsupported_media_type")
    missing = owner.get("/api/v1/contents/00000000-0000-0000-0000-000000000000/")
    assert error(missing, 404, "not_found")["detail"] == "No such content."
    # Validation errors keep their shape: fields, no detail.
    invalid = owner.patch(detail, {"title": ""}, format="json")
    assert invalid.status_code == 400
    assert set(invalid.json()) == {"title"}


def test_domain_errors_that_name_no_reason_get_their_status_as_reason(client_for):
    client = client_for(CreatorFactory())
    response = client.delete("/api/v1/auth/wallets/12345/")
    assert error(response, 404, "not_found")["detail"] == "No such wallet among yours."
    upload = client.generic(
        "DELETE",
        "/api/v1/uploads/00000000-0000-0000-0000-000000000000",
        headers={"Tus-Resumable": "1.0.0"},
    )
    assert error(upload, 404, "not_found")["detail"] == "No such upload."


def test_a_session_write_without_csrf_token_is_403_csrf_failed():
    client = Client(enforce_csrf_checks=True)
    client.force_login(CreatorFactory())
    response = client.post("/api/v1/contents/", {"title": "x"}, content_type="application/json")
    body = error(response, 403, "csrf_failed")
    assert body["detail"] == "CSRF Failed: CSRF cookie not set."
    assert Content.objects.count() == 0


# --- what Django answers around DRF -----------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_unknown_urls_under_api_are_json_404(debug, method):
    response = getattr(Client(), method)("/api/v1/no-such-thing/")
    body = error(response, 404, "not_found")
    assert body["detail"] == "No endpoint at /api/v1/no-such-thing/."


def test_a_malformed_id_is_a_json_404(debug):
    response = Client().get("/api/v1/contents/not-a-uuid/")
    error(response, 404, "not_found")


def test_a_write_without_the_trailing_slash_is_404_naming_the_right_url(debug, client_for):
    # Django's APPEND_SLASH raised RuntimeError here with DEBUG on (a 500), and redirected
    # (dropping the body) with it off.
    response = client_for(CreatorFactory()).post("/api/v1/contents", {"title": "x"}, format="json")
    body = error(response, 404, "not_found")
    assert body["detail"] == (
        "No endpoint at /api/v1/contents; did you mean /api/v1/contents/ (with a slash)?"
    )
    assert Content.objects.count() == 0


def test_a_read_without_the_trailing_slash_is_still_redirected():
    response = Client().get("/api/v1/contents?page=2")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/contents/?page=2"


def test_a_disallowed_host_is_json_400(debug):
    response = Client().get("/api/v1/contents/", HTTP_HOST="evil.example")
    body = error(response, 400, "disallowed_host")
    assert body["detail"] == "The Host header names a site this server does not serve."


def test_pages_outside_api_keep_djangos_answers(debug):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_non_json_error_from_a_drf_renderer_is_rewritten():
    # The schema view renders errors as YAML; under /api/ a client gets JSON.
    response = Client().get("/api/schema/", {"format": "nope"})
    error(response, 404, "not_found")


@pytest.mark.urls("tests.support.failing_urls")
@pytest.mark.parametrize("kind", ["drf", "django"])
def test_an_unhandled_exception_is_a_json_500(debug, kind, caplog):
    response = Client(raise_request_exception=False).get(f"/api/v1/broken/{kind}/")
    body = error(response, 500, "internal_server_error")
    assert body["detail"] == "Internal Server Error."
    assert "a bug in" not in response.content.decode()
    # Django still logs it with its traceback (and Sentry still sees it).
    logged = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    assert logged
    assert f"a bug in a {'DRF' if kind == 'drf' else 'plain Django'} view" in str(
        logged[0].exc_info[1]
    )
