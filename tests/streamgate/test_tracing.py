"""Tracing (streamgate/tracing.py): one trace from an HTTP request on a real web server through
the task it enqueues on a real Celery worker, exported over OTLP/HTTP to a receiver in the suite;
FFmpeg's stages and a gate decision's chain calls as spans; trace ids in JSON logs; nothing
installed when no OTLP endpoint is configured."""

import json
import logging
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
import redis
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from web3 import Web3

from apps.access.gates import Wallet
from apps.access.playback import gate_decision
from apps.access.services import api_token_create
from apps.content.models import Content, ContentStatus
from apps.content.outbox import outbox_add, outbox_relay
from streamgate.observability import JsonFormatter
from streamgate.tracing import span, tracer_use, tracing_enabled
from tests.factories import ContentFactory, CreatorFactory
from tests.support.evm import send
from tests.support.otlp_receiver import otlp_receiver
from tests.support.processes import ROOT, celery_worker, embedded_env, http_get, web_server

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP's span kinds


@dataclass
class Traced:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self):
        return self.exporter.get_finished_spans()


@pytest.fixture
def memory_spans():
    """StreamGate's own spans (and requests' HTTP spans) go to memory while the test runs."""
    traced = Traced(TracerProvider(), InMemorySpanExporter())
    traced.provider.add_span_processor(SimpleSpanProcessor(traced.exporter))
    tracer_use(traced.provider)
    RequestsInstrumentor().instrument(tracer_provider=traced.provider)
    try:
        yield traced
    finally:
        RequestsInstrumentor().uninstrument()
        tracer_use(None)


def traced_env(tmp_path, receiver_url: str) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    return embedded_env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        LOG_FORMAT="json",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver_url,
        OTEL_BSP_SCHEDULE_DELAY="50",  # ms: spans leave each process at once
    )


def ancestry(span, spans):
    """``span`` and its ancestors up to its root, once every one of them has arrived (else
    None)."""
    by_id = {s.span_id: s for s in spans}
    path = [span]
    while path[-1].parent_span_id:
        parent = by_id.get(path[-1].parent_span_id)
        if parent is None:
            return None
        path.append(parent)
    return path


@pytest.mark.django_db(transaction=True)
def test_a_request_and_the_task_it_enqueues_are_one_trace(tmp_path, logs_dir):
    """DELETE a content on a real uvicorn: its files are removed by a task on a real prefork
    worker; the web's and the worker's spans reach the receiver as one trace, linked parent to
    child (request → publish → task run), and the task's JSON log line carries the trace id."""
    creator = CreatorFactory()
    _, token = api_token_create(user=creator)
    content = ContentFactory(owner=creator)
    with otlp_receiver() as receiver:
        env = traced_env(tmp_path, receiver.url)
        worker_log = logs_dir / "worker.log"
        with ExitStack() as processes, ThreadPoolExecutor(2) as starting:
            # Both start at once (each takes seconds to import Django); both stop at the end.
            worker = starting.submit(
                processes.enter_context,
                celery_worker(env, worker_log, queues="default", pool="prefork"),
            )
            web = starting.submit(processes.enter_context, web_server(env, logs_dir / "web.log"))
            base = web.result()
            worker.result()
            assert http_get(f"{base}/healthz")[0] == 200  # a probe: no trace of its own
            request = urllib.request.Request(
                f"{base}/api/v1/contents/{content.id}/",
                method="DELETE",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 204
            task = "apps.content.tasks.content_files_delete"
            run = receiver.wait_for(
                lambda spans: next(
                    (s for s in spans if s.name == f"run/{task}" and s.kind == CONSUMER), None
                )
            )
            spans = receiver.wait_for(lambda spans: spans if ancestry(run, spans) else None)
    assert not Content.objects.filter(pk=content.pk).exists()
    by_id = {s.span_id: s for s in spans}
    assert run.service == "streamgate-worker"
    assert run.attributes["celery.task_name"] == task
    publish = by_id[run.parent_span_id]
    assert (publish.service, publish.name, publish.kind) == (
        "streamgate-web",
        f"apply_async/{task}",
        PRODUCER,
    )
    # Up from the task to the request's server span, all in one trace.
    path = ancestry(run, spans)
    assert {s.trace_id for s in path} == {run.trace_id}
    root = path[-1]
    assert (root.service, root.kind) == ("streamgate-web", SERVER)
    assert root.attributes["http.method"] == "DELETE"
    assert root.attributes["http.target"] == f"/api/v1/contents/{content.id}/"
    assert publish.trace_id == run.trace_id
    assert not [s for s in spans if s.attributes.get("http.target") == "/healthz"]
    logged = [
        json.loads(line)
        for line in worker_log.read_text().splitlines()
        if line.startswith("{") and "content files deleted" in line
    ]
    assert logged
    assert logged[0]["trace_id"] == run.trace_id
    assert logged[0]["span_id"] in {s.span_id for s in spans if s.trace_id == run.trace_id}


@pytest.fixture
def celery_traced(memory_spans):
    """Celery's publishes in this process are traced (and carry the trace in their headers)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument(tracer_provider=memory_spans.provider)
    try:
        yield memory_spans
    finally:
        CeleryInstrumentor().uninstrument()


@pytest.mark.django_db(transaction=True)
def test_a_task_the_outbox_relay_sends_later_joins_the_senders_trace(celery_traced):
    """The broker missed the send; beat's relay sends it minutes later, outside any request:
    the message still carries the request's trace, kept with the outbox row."""
    queue = redis.Redis.from_url(django_settings.REDIS_URL)
    queue.delete("default")
    task = "apps.content.tasks.content_files_delete"
    with span("request") as request, transaction.atomic():
        message = outbox_add(task=task, args=["abc"], kwargs={}, options={})
    trace_id = format(request.get_span_context().trace_id, "032x")
    assert message.trace_context["traceparent"].split("-")[1] == trace_id
    assert outbox_relay(now=timezone.now() + timedelta(minutes=5)) == {"sent": 1, "unsent": 0}
    sent = json.loads(queue.lpop("default"))
    assert sent["headers"]["task"] == task
    assert sent["headers"]["traceparent"].split("-")[1] == trace_id
    publish = next(s for s in celery_traced.spans() if s.name == f"apply_async/{task}")
    assert publish.parent.span_id == request.get_span_context().span_id


def make_clip(path):
    from tests.support.media import make_video

    return make_video(path, seconds=1, size="160x120", audio=False)


@pytest.fixture
def fast_transcodes(settings, tmp_path):
    from tests.transcode.conftest import TEST_LADDER

    settings.MEDIA_ENCRYPTION = False
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = [rung for rung in TEST_LADDER if rung["height"] <= 360]
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


@pytest.mark.django_db
def test_each_transcode_stage_is_a_span_with_the_job_id(memory_spans, fast_transcodes, tmp_path):
    from tests.transcode.conftest import encode

    content, job = encode(make_clip(tmp_path / "clip.mp4"))
    assert content.status == ContentStatus.READY
    stages = {s.name: s for s in memory_spans.spans() if s.name.startswith("transcode.")}
    assert sorted(stages) == [
        "transcode.encode",
        "transcode.package",
        "transcode.probe",
        "transcode.publish",
    ]
    for name, stage in stages.items():
        assert stage.attributes["streamgate.job_id"] == str(job.id)
        assert stage.attributes["streamgate.stage"] == name.removeprefix("transcode.")
        assert stage.status.status_code == StatusCode.UNSET
    assert list(stages["transcode.encode"].attributes["streamgate.renditions"]) == [
        rung["name"] for rung in job.ladder
    ]
    # One after another: each stage ends before the next starts.
    order = sorted(stages.values(), key=lambda s: s.start_time)
    assert [s.name for s in order] == [
        "transcode.probe",
        "transcode.encode",
        "transcode.package",
        "transcode.publish",
    ]
    assert all(a.end_time <= b.start_time for a, b in zip(order, order[1:], strict=False))


@pytest.mark.django_db
def test_a_stage_that_fails_ends_its_span_with_the_error(memory_spans, fast_transcodes, tmp_path):
    from tests.transcode.conftest import encode

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    content, job = encode(junk)
    assert content.status == ContentStatus.FAILED
    (probe,) = [s for s in memory_spans.spans() if s.name.startswith("transcode.")]
    assert probe.name == "transcode.probe"
    assert probe.attributes["streamgate.job_id"] == str(job.id)
    assert probe.status.status_code == StatusCode.ERROR
    assert [event.name for event in probe.events] == ["exception"]


def rpc_over_http(web3):
    """A JSON-RPC node over HTTP that answers from ``web3``'s (in-process) chain."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            method, params = request["method"], request["params"]
            if method in ("eth_call", "eth_estimateGas"):
                # A node needs no sender for a call; eth-tester wants one.
                params[0].setdefault("from", web3.eth.accounts[0])
            answer = web3.provider.make_request(method, params)
            body = Web3.to_json({**answer, "id": request["id"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.django_db
def test_a_gate_decision_traces_its_chain_calls(memory_spans, tester_chain, deployed, settings):
    owner, holder = tester_chain.accounts[:2]
    send(deployed.nft721.functions.mint(holder), owner)
    node = rpc_over_http(tester_chain.web3)
    try:
        settings.CHAIN_RPC_URLS = {tester_chain.caip2: f"http://127.0.0.1:{node.server_port}/"}
        gate = {
            "erc721": {
                "chain": tester_chain.caip2,
                "contract": deployed.nft721.address,
                "token_id": None,
            }
        }
        content = ContentFactory(status=ContentStatus.READY, gate=gate)
        decision = gate_decision(
            gate=gate, wallets=[Wallet("eip155", holder.lower())], content=content
        )
    finally:
        node.shutdown()
        node.server_close()
    assert decision.reason == "gate_met"
    spans = memory_spans.spans()
    (decide,) = [s for s in spans if s.name == "gate.decide"]
    assert decide.attributes["streamgate.content_id"] == str(content.id)
    assert decide.attributes["streamgate.decision"] == "gate_met"
    (check,) = [s for s in spans if s.name == "chain.check"]
    assert check.parent.span_id == decide.context.span_id  # asked from the pool's thread
    assert check.attributes["streamgate.chain"] == tester_chain.caip2
    assert check.attributes["streamgate.contract"] == deployed.nft721.address
    assert check.attributes["streamgate.answer"] == "true"
    calls = [s for s in spans if s.parent is not None and s.parent.span_id == check.context.span_id]
    assert calls
    assert {s.name for s in calls} == {"POST"}
    assert {s.attributes["http.url"] for s in calls} == {
        settings.CHAIN_RPC_URLS[tester_chain.caip2]
    }
    assert {s.context.trace_id for s in (decide, check, *calls)} == {decide.context.trace_id}


def test_json_log_lines_carry_the_current_trace_and_span(memory_spans):
    record = logging.LogRecord("streamgate", logging.INFO, __file__, 1, "hello", None, None)
    formatter = JsonFormatter()
    assert "trace_id" not in json.loads(formatter.format(record))
    with span("work") as current:
        inside = json.loads(formatter.format(record))
    context = current.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_with_an_otlp_endpoint(environ, enabled):
    assert tracing_enabled(environ) is enabled


def test_without_an_endpoint_no_tracing_is_installed(tmp_path):
    """A web process and a worker process start with no OTEL_* endpoint: no tracer provider,
    no exporter, no instrumentation (not even imported), no middleware; spans are nothing and
    log lines carry no trace fields. (redis-py itself imports OpenTelemetry's metrics API when
    it is installed; that is not ours to stop.)"""
    env = embedded_env(tmp_path, DJANGO_SETTINGS_MODULE="streamgate.settings.test")
    for name in [name for name in env if name.startswith("OTEL_")]:
        del env[name]
    script = (
        "import sys, json, logging\n"
        "import streamgate.asgi\n"
        "from celery.signals import worker_process_init\n"
        "worker_process_init.send(sender='test')\n"
        "from django.conf import settings\n"
        "from opentelemetry import trace\n"
        "from streamgate.tracing import span, tracing_configure\n"
        "from streamgate.observability import JsonFormatter\n"
        "with span('x') as current:\n"
        "    line = JsonFormatter().format(logging.makeLogRecord({'msg': 'm'}))\n"
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', "
        "'opentelemetry.instrumentation')\n"
        "print(json.dumps({'configured': tracing_configure(service='s'), 'span': current is None,"
        " 'provider': type(trace.get_tracer_provider()).__name__,"
        " 'loaded': sorted(m for m in sys.modules if m.startswith(ours)),"
        " 'middleware': [m for m in settings.MIDDLEWARE if 'opentelemetry' in m],"
        " 'line': json.loads(line)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["configured"] is False
    assert found["span"] is True
    assert found["provider"] == "ProxyTracerProvider"
    assert found["loaded"] == []
    assert found["middleware"] == []
    assert "trace_id" not in found["line"]


@pytest.mark.django_db
def test_each_chunk_of_a_long_video_is_a_span_with_the_job_id(
    memory_spans, fast_transcodes, settings, tmp_path
):
    from tests.support.media import make_video
    from tests.transcode.conftest import encode

    settings.TRANSCODE_CHUNK_THRESHOLD_SECONDS = 4
    settings.TRANSCODE_CHUNK_SECONDS = 4
    clip = make_video(tmp_path / "long.mp4", seconds=8, size="160x120", audio=False)
    content, job = encode(clip)
    assert content.status == ContentStatus.READY
    chunks = [s for s in memory_spans.spans() if s.name == "transcode.chunk"]
    assert sorted(s.attributes["streamgate.chunk"] for s in chunks) == ["video-0", "video-1"]
    for chunk in chunks:
        assert chunk.attributes["streamgate.job_id"] == str(job.id)
        assert list(chunk.attributes["streamgate.renditions"]) == [r["name"] for r in job.ladder]
