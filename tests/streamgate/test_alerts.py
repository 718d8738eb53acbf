"""The alerting rules (deploy/prometheus/alerts.yml): valid for promtool, loaded by the shipped
Prometheus configuration, each alert unit-tested firing and quiet (alerts_test.yml), and every
series they name one that the app exports, with the labels they select on."""

import re
import shutil
import subprocess

import pytest
import yaml
from eth_utils import to_checksum_address
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.access.gates import Wallet
from apps.access.playback import gate_decision
from tests.factories import ContentFactory
from tests.support.processes import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: tests/prometheus.sh installs Debian's prometheus"
)
# Series Prometheus makes itself, not the app.
PROMETHEUS_OWN = {"up"}
# Series another part of issue #20 adds (the signer's nonce reconciliation): allowed here only
# while no code declares them; once one does, it is checked like every other.
PENDING = {"streamgate_signer_nonce_reconciled_total"}
SELECTOR = re.compile(r"\b((?:streamgate|django)_[a-z0-9_]+|up)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def promtool(*args: str, cwd=PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@needs_promtool
def test_the_rules_and_the_configuration_that_loads_them_are_valid(tmp_path):
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    # prometheus.yml as compose mounts it: alerts.yml beside it, the token file present.
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    token = tmp_path / "metrics_token"
    token.write_text("t")
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/run/secrets/metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/run/secrets/metrics_token", str(token))
    )
    loaded = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "SUCCESS: 1 rule files found" in loaded.stdout


@needs_promtool
def test_the_alerts_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_scrape_job_the_alerts_name_is_the_one_prometheus_runs():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    named = {job for rule in rules() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert named
    assert named <= jobs


def test_each_alert_is_tested_firing_and_quiet():
    document = yaml.safe_load(ALERT_TESTS.read_text())
    assert document["rule_files"] == ["alerts.yml"]
    firing, quiet = set(), set()
    for case in document["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert len(names) == len(rules())  # no alert name used twice
    assert names - firing == set()
    assert names - quiet == set()


def exported_labels(page: str) -> dict[str, set[str]]:
    """Sample and family name -> the label names seen on its samples."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(page):
        labels.setdefault(family.name, set())
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
            labels[family.name].update(sample.labels)
    return labels


def declared_label_names(name: str) -> set[str] | None:
    """The label names of a metric declared in this process but with no sample yet (a labelled
    counter nobody incremented); prometheus_client has no public way to ask."""
    collector = REGISTRY._names_to_collectors.get(name)
    names = getattr(collector, "_labelnames", None)
    return set(names) if names is not None else None


def base_name(name: str) -> str:
    return next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)


def labels_of(name: str, exported: dict[str, set[str]]) -> set[str] | None:
    """The label names of ``name`` on the page (from its samples, or from its declaration when
    it has none yet); None when the page does not have it at all."""
    if exported.get(name):
        return exported[name]
    base = base_name(name)
    if name not in exported and base not in exported:
        return None
    return declared_label_names(base) or exported.get(base) or set()


def declared_in_code(name: str) -> bool:
    base = base_name(name)
    for folder in ("apps", "streamgate"):
        for path in (ROOT / folder).rglob("*.py"):
            if f'"{base}"' in path.read_text() or f'"{name}"' in path.read_text():
                return True
    return False


@pytest.mark.django_db
def test_alerts_name_only_series_the_app_exports(client, settings):
    """Scraped from /metrics after the events that make the labelled series: a request that
    fails (a 500), an ownership check on a chain whose node is down."""
    settings.ROOT_URLCONF = "tests.support.error_urls"
    settings.CHAIN_RPC_URLS = {"eip155:10": "http://127.0.0.1:9/"}  # nothing listens there
    client.raise_request_exception = False
    assert client.get("/fails/").status_code == 500
    account = to_checksum_address("0x" + "cd" * 20)
    gate = {"erc721": {"chain": "eip155:10", "contract": "0x" + "44" * 20, "token_id": None}}
    decision = gate_decision(
        gate=gate, wallets=[Wallet("eip155", account)], content=ContentFactory()
    )
    assert not decision.allowed
    response = client.get("/metrics")
    assert response.status_code == 200
    page = response.content.decode()
    exported = exported_labels(page)
    assert 'django_http_responses_total_by_status_total{status="500"}' in page
    assert re.search(
        r'streamgate_rpc_duration_seconds_count\{chain="eip155:10",outcome="error"\} [1-9]', page
    )

    checked = set()
    for rule in rules():
        expr = rule["expr"]
        selectors = SELECTOR.findall(expr)
        if any(name in PENDING and not declared_in_code(name) for name, _ in selectors):
            continue  # a pending series (see PENDING): nothing to check it against yet
        seen_in_rule: set[str] = set()
        for name, matchers in selectors:
            if name in PROMETHEUS_OWN:
                continue
            labels = labels_of(name, exported)
            assert labels is not None, f"{rule['alert']}: {name} is not on /metrics"
            wanted = set(MATCHER.findall(matchers))
            assert wanted <= labels, f"{rule['alert']}: {name} has no label {wanted - labels}"
            seen_in_rule |= labels
            checked.add(name)
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        grouped.discard("")
        assert grouped <= seen_in_rule, f"{rule['alert']}: no series has {grouped - seen_in_rule}"
    assert len(checked) >= 9
