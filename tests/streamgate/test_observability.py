"""Request ids on responses and log records, and the JSON log format."""

import json
import logging

import pytest

from streamgate.observability import JsonFormatter, RequestIdFilter, request_id_bound

pytestmark = pytest.mark.django_db


def test_every_response_names_its_request(client):
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234")["X-Request-ID"] == "lb-1234"
    # Anything that is not a plain token is replaced, never echoed into logs or headers.
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")["X-Request-ID"]
    assert len(replaced) == 32


def test_log_records_carry_the_request_id_and_their_extra_fields_as_json():
    record = logging.makeLogRecord(
        {"name": "apps.demo", "levelname": "INFO", "msg": "done %s", "args": ("now",)}
    )
    record.content = "c-1"
    with request_id_bound("req-9"):
        RequestIdFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "done now"
    assert entry["request_id"] == "req-9"
    assert entry["content"] == "c-1"
    assert entry["logger"] == "apps.demo"
    assert entry["time"].endswith("Z")
    outside = logging.makeLogRecord({"msg": "idle"})
    RequestIdFilter().filter(outside)
    assert json.loads(JsonFormatter().format(outside))["request_id"] == "-"
