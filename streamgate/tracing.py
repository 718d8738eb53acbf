"""OpenTelemetry tracing: one trace from an HTTP request through the Celery tasks it sends, their
FFmpeg stages and the chain calls of a gate decision, exported over OTLP/HTTP.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (and
``OTEL_SDK_DISABLED`` is not ``true``): then nothing of OpenTelemetry is imported, no exporter runs
and ``span()`` is an empty context manager. Everything else is the SDK's own reading of the
standard ``OTEL_*`` variables (service name, resource attributes, sampler, batch delays, headers,
timeouts); ``service.name`` defaults to the process kind (streamgate-web, -worker, -beat).

``tracing_configure`` is called once per process by its entry point: asgi.py and wsgi.py for
the web, Celery's ``worker_process_init`` (each prefork child gets its own exporter and batch
thread) and ``beat_init`` (streamgate/celery.py). The instrumentation packages then give spans
for Django requests, Celery publishes and runs (the trace context travels in the message
headers), psycopg, Redis, requests/urllib3 (the JSON-RPC calls of web3) and botocore (S3).
"""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

P = ParamSpec("P")
R = TypeVar("R")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Probes and scrapes make no trace unless OTEL_PYTHON_(DJANGO_)EXCLUDED_URLS says otherwise:
# every few seconds from every kubelet and Prometheus, they would outnumber the requests.
PROBES_EXCLUDED = "/healthz$,/readyz$,/metrics$"
# The tracer of our own spans (stages, gate decisions); None while tracing is off.
_tracer: "Tracer | None" = None


def tracing_enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether ``environ`` names an OTLP endpoint for traces (and does not disable the SDK)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def tracing_configure(*, service: str, exporter: "SpanExporter | None" = None) -> bool:
    """Install the tracer provider, its batch exporter and the instrumentations in this process
    when an OTLP endpoint is configured (or ``exporter`` is given); False when tracing stays off.
    Calling it again in the same process changes nothing."""
    if _tracer is not None:
        return True
    if exporter is None and not tracing_enabled():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(exporter))  # delays from OTEL_BSP_*
    trace.set_tracer_provider(provider)
    _instrument(provider)
    tracer_use(provider)
    return True


def _instrument(provider: "TracerProvider") -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    named = any(
        name in os.environ
        for name in ("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
    )
    # Django's middleware is added to settings.MIDDLEWARE: before the handler is built.
    DjangoInstrumentor().instrument(
        tracer_provider=provider, excluded_urls=None if named else PROBES_EXCLUDED
    )
    CeleryInstrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)  # the connections Django opens
    RedisInstrumentor().instrument(tracer_provider=provider)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    URLLib3Instrumentor().instrument(tracer_provider=provider)
    BotocoreInstrumentor().instrument(tracer_provider=provider)


def tracer_use(provider: "TracerProvider | None") -> None:
    """Send StreamGate's own spans (``span()``) to ``provider``; None turns them off."""
    global _tracer  # one tracer per process, set at start-up
    _tracer = provider.get_tracer("streamgate") if provider is not None else None


@contextmanager
def span(name: str, attributes: dict[str, Any] | None = None) -> Iterator["Span | None"]:
    """A span named ``name`` with ``attributes``, current while the block runs (an exception
    is recorded on it and marks it failed); nothing at all while tracing is off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def context_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to store with work that is
    sent later; empty while tracing is off or no span is current."""
    if _tracer is None:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


@contextmanager
def context_attached(carrier: dict[str, str] | None) -> Iterator[None]:
    """Run the block in the trace context ``context_carrier()`` gave (spans started in it, and
    tasks sent from it, belong to that trace); as it is when the carrier is empty."""
    if _tracer is None or not carrier:
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def in_current_trace(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run in this thread's trace context wherever it is called (a pool's thread,
    which does not inherit it; only the trace context: Django's connections stay per thread)."""
    if _tracer is None:
        return function
    from opentelemetry import context

    captured = context.get_current()

    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        token = context.attach(captured)
        try:
            return function(*args, **kwargs)
        finally:
            context.detach(token)

    return traced


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the span current in this thread, or None: no span, or
    OpenTelemetry never imported in this process (tracing off costs nothing here)."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return format(found.trace_id, "032x"), format(found.span_id, "016x")
