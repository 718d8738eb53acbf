"""The Kubernetes manifests (deploy/kubernetes/), as `kubectl kustomize` renders each overlay:
every object valid against the Kubernetes schemas (kubernetes-validate) at KUBERNETES_VERSION,
checkov's Kubernetes policies passing but for the findings accepted with a reason, every
workload with probes, requests and limits, one worker per Celery queue, one beat."""

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from streamgate.celery import QUEUES
from tests.support.processes import BIN, embedded_env, spawned, wait_for_log

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
# The app and the migration Job of each overlay, applied in two steps (README).
OVERLAYS = ("base", "base/migrate", "overlays/production", "overlays/production/migrate")
# The oldest Kubernetes the manifests promise to work on (README).
KUBERNETES_VERSION = "1.32.0"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# Each with its reason in base/pod-defaults/pod.yaml (checkov.io/skipN annotations).
ACCEPTED_FINDINGS = {"CKV_K8S_35", "CKV_K8S_40", "CKV_K8S_43"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def kubectl_with_kustomize_5() -> tuple[str | None, str]:
    """kubectl (tests/kubernetes.sh installs it) when its kustomize renders components (v5+)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None, "kubectl is not installed (tests/kubernetes.sh installs it as root)"
    version = subprocess.run(
        [kubectl, "version", "--client"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"Kustomize Version: v(\d+)", version)
    if not found or int(found.group(1)) < 5:
        return None, f"kubectl's kustomize is older than v5: {version.strip()!r}"
    return kubectl, ""


KUBECTL, NO_KUBECTL = kubectl_with_kustomize_5()
pytestmark = pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """Each overlay's objects, rendered once for the module."""
    objects = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [KUBECTL, "kustomize", str(KUSTOMIZE / overlay)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, f"{overlay}: {result.stderr}"
        objects[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return objects


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def workload_problems(obj: dict) -> list[str]:
    """What a workload lacks: probes (long-running kinds) and CPU/memory requests and limits."""
    if obj["kind"] not in WORKLOADS:
        return []
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    problems = []
    for container in obj["spec"]["template"]["spec"]["containers"]:
        where = f"{name} container {container['name']}"
        if obj["kind"] != "Job":
            problems += [
                f"{where}: no {probe}"
                for probe in ("livenessProbe", "readinessProbe")
                if probe not in container
            ]
        resources = container.get("resources", {})
        problems += [
            f"{where}: no {part}.{resource}"
            for part in ("requests", "limits")
            for resource in ("cpu", "memory")
            if resource not in resources.get(part, {})
        ]
    return problems


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered):
    for overlay, objects in rendered.items():
        assert len(objects) >= 7, overlay
        for obj in objects:
            # Strict: a misspelt field is an error, not silently dropped by the API server.
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_schema_validation(rendered):
    web = copy.deepcopy(of_kind(rendered["base"], "Deployment")["streamgate-web"])
    web["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


def test_every_workload_has_probes_requests_and_limits(rendered):
    for overlay, objects in rendered.items():
        assert [obj for obj in objects if obj["kind"] in WORKLOADS], overlay
        assert [p for obj in objects for p in workload_problems(obj)] == [], overlay


def test_a_workload_without_probes_or_limits_is_caught(rendered):
    deployments = of_kind(rendered["overlays/production"], "Deployment")
    web = copy.deepcopy(deployments["streamgate-web"])
    del web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert workload_problems(web) == ["Deployment/streamgate-web container app: no readinessProbe"]
    worker = copy.deepcopy(deployments["streamgate-worker-transcode"])
    del worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    del worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert workload_problems(worker) == [
        "Deployment/streamgate-worker-transcode container app: no livenessProbe",
        "Deployment/streamgate-worker-transcode container app: no limits.memory",
    ]
    job = copy.deepcopy(of_kind(rendered["overlays/production/migrate"], "Job"))
    migrate = job["streamgate-migrate"]
    del migrate["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert workload_problems(migrate) == [
        "Job/streamgate-migrate container app: no requests.cpu",
        "Job/streamgate-migrate container app: no requests.memory",
    ]


def worker_queues(objects: list[dict]) -> dict[str, str]:
    """Deployment name -> the queues its `celery worker --queues` consumes."""
    queues = {}
    for name, deployment in of_kind(objects, "Deployment").items():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        if command[:3] == ["celery", "--app", "streamgate"] and command[3] == "worker":
            queues[name] = command[command.index("--queues") + 1]
    return queues


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_one_worker_deployment_and_queue_depth_hpa_per_queue(rendered, overlay):
    objects = rendered[overlay]
    queues = worker_queues(objects)
    assert sorted(queues.values()) == sorted(QUEUES)
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    for deployment, queue in queues.items():
        metric = hpas[deployment]["spec"]["metrics"][0]["external"]["metric"]
        assert hpas[deployment]["spec"]["scaleTargetRef"]["name"] == deployment
        assert metric == {
            "name": "streamgate_queue_depth",
            "selector": {"matchLabels": {"queue": queue}},
        }
        pod = of_kind(objects, "Deployment")[deployment]["spec"]["template"]["spec"]
        # The liveness ping asks this very worker (--hostname QUEUE@%h, %h the pod's name).
        assert f'"{queue}@$HOSTNAME"' in pod["containers"][0]["livenessProbe"]["exec"]["command"][2]
        # Warm shutdown gets at least the longest task's hard limit before SIGKILL.
        assert pod["terminationGracePeriodSeconds"] > settings.CELERY_TASK_TIME_LIMIT
    transcode = of_kind(objects, "Deployment")["streamgate-worker-transcode"]["spec"]["template"]
    chunk_budget = settings.TRANSCODE_CHUNK_SECONDS * settings.TRANSCODE_SECONDS_PER_MEDIA_SECOND
    assert transcode["spec"]["terminationGracePeriodSeconds"] > chunk_budget


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_beat_runs_once_and_is_recreated(rendered, overlay):
    beat = of_kind(rendered[overlay], "Deployment")["streamgate-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in of_kind(rendered[overlay], "HorizontalPodAutoscaler").values()
    }
    assert "streamgate-beat" not in autoscaled


def dockerfile_uid() -> int:
    return int(re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))


def test_pods_run_as_the_images_user_read_only_with_writable_emptydirs(rendered):
    # The image's STREAMGATE_VAR_DIR (Dockerfile) and the folders the app writes under it.
    var_dir = Path(
        re.search(r"STREAMGATE_VAR_DIR=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    )
    written = [
        var_dir / Path(folder).relative_to(settings.VAR_DIR)
        for folder in (settings.TUS_BUFFER_DIR, settings.TRANSCODE_WORK_DIR)
    ] + [Path("/tmp")]
    for overlay, objects in rendered.items():
        for obj in objects:
            if obj["kind"] not in WORKLOADS:
                continue
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"] == {"drop": ["ALL"]}
                mounts = {
                    Path(m["mountPath"])
                    for m in container["volumeMounts"]
                    if m["name"] in empty_dirs
                }
                for folder in written:
                    assert any(folder.is_relative_to(m) for m in mounts), (overlay, folder)


def test_the_migration_job_runs_the_apps_image_and_configuration(rendered):
    for app, migrate in (
        ("base", "base/migrate"),
        ("overlays/production", "overlays/production/migrate"),
    ):
        job = of_kind(rendered[migrate], "Job")["streamgate-migrate"]["spec"]["template"]["spec"]
        web = of_kind(rendered[app], "Deployment")["streamgate-web"]["spec"]["template"]["spec"]
        assert job["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
        assert job["containers"][0]["image"] == web["containers"][0]["image"]
        assert job["containers"][0]["envFrom"] == web["containers"][0]["envFrom"]
        assert of_kind(rendered[app], "ConfigMap") == of_kind(rendered[migrate], "ConfigMap")
    production = of_kind(rendered["overlays/production"], "Deployment")["streamgate-web"]
    assert production["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")


def test_readme_documents_every_secret_key_the_pods_read(rendered):
    readme = (ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("\n### Kubernetes\n", 1)[1], maxsplit=1)[0]
    keys = set()
    for objects in rendered.values():
        for config in of_kind(objects, "ConfigMap").values():
            keys |= {
                value.rsplit("/", 1)[1]
                for name, value in config["data"].items()
                if name.endswith("_FILE")
            }
        for obj in objects:
            if obj["kind"] in WORKLOADS:
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    keys |= {
                        e["valueFrom"]["secretKeyRef"]["key"]
                        for e in container.get("env", [])
                        if "secretKeyRef" in e.get("valueFrom", {})
                    }
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "FLOWER_BASIC_AUTH"} <= keys
    assert [key for key in sorted(keys) if f"`{key}`" not in section] == []


@pytest.fixture(scope="module")
def checkov_results(rendered, tmp_path_factory) -> dict[str, dict]:
    """checkov's Kubernetes policies, one run over every overlay plus a deliberately bad copy
    of production (web allowed to escalate privileges) that must fail."""
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} is missing: `make test` creates it (.venv-checkov/.installed)")
    folder = tmp_path_factory.mktemp("checkov")
    bad = copy.deepcopy(rendered["overlays/production"])
    web = next(
        o for o in bad if o["kind"] == "Deployment" and o["metadata"]["name"] == "streamgate-web"
    )
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "allowPrivilegeEscalation"
    ] = True
    for name, objects in [*rendered.items(), ("bad", bad)]:
        (folder / name.replace("/", "-")).mkdir()
        (folder / name.replace("/", "-") / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    # --skip-download: no call to Prisma Cloud (the tests have no network).
    result = subprocess.run(
        [
            CHECKOV,
            "--directory",
            folder,
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, result.stderr
    findings: dict[str, dict] = {
        name.replace("/", "-"): {"failed": [], "skipped": set(), "passed": 0}
        for name in [*OVERLAYS, "bad"]
    }

    def overlay_of(check: dict) -> dict:
        return next(findings[part] for part in Path(check["file_path"]).parts if part in findings)

    for check in report["results"]["failed_checks"]:
        overlay_of(check)["failed"].append((check["check_id"], check["resource"]))
    for check in report["results"]["skipped_checks"]:
        overlay_of(check)["skipped"].add(check["check_id"])
    for check in report["results"]["passed_checks"]:
        overlay_of(check)["passed"] += 1
    return findings


def test_checkov_passes_every_overlay_but_the_accepted_findings(checkov_results):
    for overlay in OVERLAYS:
        found = checkov_results[overlay.replace("/", "-")]
        assert found["failed"] == [], overlay
        assert found["passed"] > 50, overlay  # the policies did run on this overlay
        assert found["skipped"] <= ACCEPTED_FINDINGS, overlay


def test_checkov_fails_a_container_that_may_escalate_privileges(checkov_results):
    assert checkov_results["bad"]["failed"] == [
        ("CKV_K8S_20", "Deployment.streamgate.streamgate-web")
    ]


def test_the_worker_probe_answers_for_its_worker_and_fails_without_it(rendered, tmp_path, logs_dir):
    """The rendered worker command and its liveness probe, run for real on the suite's Redis:
    the probe pings that very worker (--hostname QUEUE@%h is QUEUE@$HOSTNAME), and fails once
    the worker has stopped (SIGTERM: Celery's warm shutdown, exit 0)."""
    deployment = of_kind(rendered["base"], "Deployment")["streamgate-worker-default"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probe = container["livenessProbe"]["exec"]["command"]
    env = {
        **embedded_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE="streamgate.settings.test",
            REDIS_URL=settings.REDIS_URL,
        ),
        "HOSTNAME": socket.gethostname(),  # as in a pod: its name, which %h also gives
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # `celery` is the venv's
    }
    with spawned(container["command"], env=env, log=logs_dir / "worker.log") as worker:
        wait_for_log("ready.", timeout=60, process=worker, log=logs_dir / "worker.log")
        answered = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert answered.returncode == 0, answered.stderr
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(30) == 0
    # The same command with a shorter wait for the answer that cannot come.
    quick = [*probe[:-1], probe[-1].replace("--timeout 10", "--timeout 1")]
    assert quick != probe
    unanswered = subprocess.run(quick, env=env, capture_output=True, text=True, timeout=30)
    assert unanswered.returncode != 0
    assert "No nodes replied" in unanswered.stdout + unanswered.stderr


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_autoscaled_deployments_leave_the_replica_count_to_their_hpa(rendered, overlay):
    hpas = of_kind(rendered[overlay], "HorizontalPodAutoscaler").values()
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas}
    deployments = of_kind(rendered[overlay], "Deployment")
    assert targets == {
        name for name in deployments if name not in ("streamgate-beat", "streamgate-flower")
    }
    # A replicas field would be reset by every `kubectl apply`, undoing the HPA's count.
    assert [name for name in targets if "replicas" in deployments[name]["spec"]] == []
