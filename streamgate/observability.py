"""Request ids and structured logs.

Every HTTP request gets an id (the caller's ``X-Request-ID`` when it is a sane token, else a new
one; with ``TRUSTED_PROXIES`` set, only a trusted proxy's, so that no client can choose the id its
audit rows and log lines carry), returned in the response's ``X-Request-ID``, put on every log
record made while it is handled, and carried in the headers of the Celery tasks it sends, whose log
records then carry it too. Records made while a request is handled also carry ``client_address``,
the client as streamgate/client_address.py decided it. ``LOG_FORMAT=json`` writes one JSON object
per record with the record's ``extra`` fields, and ``trace_id``/``span_id`` when it is made inside
a span (streamgate/tracing.py).
"""

import json
import logging
import re
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.conf import settings

from streamgate.client_address import FROM_TRUSTED_PROXY
from streamgate.tracing import current_trace_ids

REQUEST_ID_HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_client_address: ContextVar[str | None] = ContextVar("client_address", default=None)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_id_bound(value: str):
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


def request_id_for(offered: str) -> str:
    """The caller's id when it is a sane token, else a new one."""
    return offered if _VALID.match(offered) else uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        if settings.TRUSTED_PROXIES and not request.META.get(FROM_TRUSTED_PROXY):
            offered = ""  # behind proxies, a header straight from a client is not believed
        value = request_id_for(offered)
        request.request_id = value
        client = _client_address.set(request.META.get("REMOTE_ADDR") or None)
        try:
            with request_id_bound(value):
                response = self.get_response(request)
        finally:
            _client_address.reset(client)
        response[REQUEST_ID_HEADER] = value
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        client = _client_address.get()
        if client and not hasattr(record, "client_address"):
            record.client_address = client
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the current span's
    trace_id and span_id, extra fields."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        ids = current_trace_ids()
        if ids:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                plain = isinstance(value, (str, int, float, bool, type(None)))
                entry[key] = value if plain else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


@before_task_publish.connect
def _carry_request_id(headers=None, **_):
    value = _request_id.get()
    if value and headers is not None:
        headers.setdefault("request_id", value)


_task_tokens: dict[str, object] = {}


@task_prerun.connect
def _bind_task_request_id(task_id=None, task=None, **_):
    value = getattr(task.request, "request_id", None) if task is not None else None
    if value and task_id:
        _task_tokens[task_id] = _request_id.set(value)


@task_postrun.connect
def _unbind_task_request_id(task_id=None, **_):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _request_id.reset(token)
