"""The /metrics page: our metrics move with what happens, values read at scrape time, the
workers' samples reach the web process's page, and the Grafana dashboard uses only metrics
that exist."""

import json
import re
import time
import urllib.request

import pytest
from django.conf import settings
from eth_utils import to_checksum_address
from kombu import Connection
from prometheus_client import REGISTRY

from apps.access.gates import Wallet
from apps.access.playback import gate_decision
from apps.transcode.models import JobState, TranscodeJob
from tests.factories import ContentFactory
from tests.support.processes import ROOT, celery_worker, embedded_env, manage, web_server

pytestmark = pytest.mark.django_db
DASHBOARD = ROOT / "deploy" / "grafana" / "streamgate-dashboard.json"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_jobs_by_state_and_queue_depths_are_read_at_scrape_time(client):
    content = ContentFactory()
    TranscodeJob.objects.create(content=content, attempt=1, state=JobState.FAILED)
    TranscodeJob.objects.create(content=content, attempt=2, state=JobState.RUNNING)
    page = scrape(client)
    assert 'streamgate_transcode_jobs{state="failed"} 1.0' in page
    assert 'streamgate_transcode_jobs{state="running"} 1.0' in page
    assert 'streamgate_transcode_jobs{state="succeeded"} 0.0' in page
    for queue in ("uploads", "transcode", "chain", "default"):
        assert re.search(rf'streamgate_queue_depth{{queue="{queue}"}} \d', page), queue


def test_gate_decisions_and_cache_lookups_are_counted():
    account = to_checksum_address("0x" + "ab" * 20)
    gate = {"allowlist": {"accounts": [f"eip155:1:{account}"]}}
    content = ContentFactory()
    before = sample("streamgate_gate_decisions_total", result="allow")
    denied_before = sample("streamgate_gate_decisions_total", result="deny")
    assert gate_decision(gate=gate, wallets=[Wallet("eip155", account)], content=content).allowed
    assert not gate_decision(gate=gate, wallets=[], content=content).allowed
    assert sample("streamgate_gate_decisions_total", result="allow") == before + 1
    assert sample("streamgate_gate_decisions_total", result="deny") == denied_before + 1


def test_uploaded_bytes_are_counted(client_for):
    from tests.factories import CreatorFactory

    api = client_for(CreatorFactory())
    before = sample("streamgate_upload_bytes_total")
    tus = {"HTTP_TUS_RESUMABLE": "1.0.0"}
    created = api.post("/api/v1/uploads/", HTTP_UPLOAD_LENGTH="100", **tus)
    location = created["Location"]
    patched = api.patch(
        location,
        data=b"x" * 60,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET="0",
        **tus,
    )
    assert patched.status_code == 204
    assert sample("streamgate_upload_bytes_total") == before + 60
    assert sample("streamgate_uploads_active") == 0


def test_the_dashboard_uses_only_metrics_that_exist(client):
    page = scrape(client)
    exposed = set(re.findall(r"^# TYPE (\S+) ", page, re.M))
    dashboard = json.loads(DASHBOARD.read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\b((?:streamgate|django)_[a-z0-9_]+)", target["expr"]))
    assert used
    suffixes = ("_bucket", "_count", "_sum", "_total")
    for name in used:
        base = next((name[: -len(s)] for s in suffixes if name.endswith(s)), name)
        assert name in exposed or base in exposed, name


def test_worker_samples_reach_the_web_page(tmp_path, logs_dir):
    """With PROMETHEUS_MULTIPROC_DIR, a task failing in a worker shows on the web's /metrics."""
    from tests.support.celery_tasks import failing_probe

    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = embedded_env(
        tmp_path / "var", REDIS_URL=settings.REDIS_URL, PROMETHEUS_MULTIPROC_DIR=str(folder)
    )
    manage(env, "migrate", "--noinput")
    with (
        celery_worker(
            env, logs_dir / "worker.log", queues="default", include="tests.support.celery_tasks"
        ),
        web_server(env, logs_dir / "web.log") as base,
    ):
        # Sent on a connection of its own to the worker's broker, and no result waited for:
        # this process's Celery app is not what is tested, and an earlier test's throwaway Redis
        # may be what its pools last spoke to. The page is the proof.
        with Connection(settings.REDIS_URL) as connection:
            failing_probe.apply_async(ignore_result=True, connection=connection)
        deadline = time.monotonic() + 40
        line = 'streamgate_task_failures_total{task="apps.content.tasks.failing_probe"} 1.0'
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                page = response.read().decode()
            if line in page:
                break
            time.sleep(0.2)
        assert line in page
