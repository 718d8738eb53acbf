"""schemathesis against /api/schema/: generated requests to every operation, with a creator's
bearer token, never get a 5xx, every documented response matches the schema, and every error
is JSON with a reason (or DRF's per-field validation errors)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from apps.access.services import api_token_create
from tests.factories import ContentFactory, CreatorFactory

pytestmark = pytest.mark.django_db

# tus PATCH bodies are raw bytes, serialised as application/octet-stream is.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@pytest.fixture
def api_schema(media_root):
    """The schema, served by the real WSGI application in this process. As Django's test client
    does, requests keep the test's database connection (and its transaction)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from streamgate.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_api_never_fails_and_matches_its_schema(api_schema):
    creator = CreatorFactory()
    ContentFactory(owner=creator)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        # A fresh token per operation: fuzzing logout or token revocation must not sign the
        # rest of the run out.
        _, clear = api_token_create(user=creator, name="fuzz")
        exercise(operation, {"Authorization": f"Bearer {clear}"}, statuses)

    # The run was signed in: every operation got past authentication at least once.
    # (Sign-in verification answers 401 to every message it cannot accept: that is its job.)
    unauthenticated = [
        label
        for label, seen in statuses.items()
        if seen == {401} and not label.endswith("/verify/")
    ]
    assert unauthenticated == [], unauthenticated


@schemathesis.check
def errors_are_json_with_a_reason(ctx, response, case) -> None:
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type == "application/json", f"{response.status_code} as {content_type!r}"
    if case.method.upper() == "HEAD":
        return  # no body
    body = response.json()
    if isinstance(body, dict) and "detail" in body:
        assert isinstance(body.get("reason"), str), f"no reason in {body}"


def exercise(operation, headers: dict, statuses: dict[str, set[int]]) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        response = case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                response_schema_conformance,
                errors_are_json_with_a_reason,
            ],
        )
        statuses.setdefault(operation.label, set()).add(response.status_code)

    run()
