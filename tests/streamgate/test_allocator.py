"""streamgate.allocator: glibc's thresholds set so that an upload's quarter-MiB blocks reuse the
same pages instead of new ones (a page fault and a zeroing per 4 KiB). Page faults are counted
by the kernel (getrusage, /proc/<pid>/stat), not timed: in a process that churns bytes as
uvicorn's own protocol class does, and in the web process serving tus PATCHes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from apps.access.services import api_token_create
from tests.factories import CreatorFactory
from tests.support.processes import ROOT, free_port, start_web, stop
from tests.uploads.test_live import server_env

MIB = 1024 * 1024

# A body's life in uvicorn's httptools class: the parser's slice, appended to a bytearray,
# handed over as bytes; a few kept alive at once, as requests overlap.
CHURN = """
import os, resource, sys
sys.path.insert(0, {root!r})
from streamgate import allocator
print(allocator.tune() if {tune} else None)
def churn():
    kept = []
    for _ in range(400):
        read = os.urandom(16) * (233 * 1024 // 16)  # the event loop's read
        block = read[1:]  # the parser's slice
        gathered = bytearray()
        gathered += block
        kept.append(bytes(gathered))
        del gathered
        if len(kept) > 4:
            kept.pop(0)
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churned(tune: bool, **env: str) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", CHURN.format(root=str(ROOT), tune=tune)],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "streamgate.settings.test", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    tuned, faults = result.stdout.split()
    return tuned, int(faults)


def test_tuned_the_same_pages_serve_every_block():
    tuned, faults = churned(True)
    assert tuned == "True"
    assert faults < 50  # 0 here (without tune(), 300 to 11,500 as the heap's history goes)


@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
    ],
)
def test_an_operators_own_setting_is_kept(env):
    tuned, _ = churned(True, **env)
    assert tuned == "False"


def page_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.django_db(transaction=True)
def test_the_web_process_is_tuned_before_it_reads_a_body(tmp_path):
    """Measured: 54-58 page faults per 5 MiB PATCH tuned, 167-329 with glibc's defaults."""
    token = api_token_create(user=CreatorFactory())[1]
    port = free_port()
    process = start_web(server_env(tmp_path), tmp_path / "web.log", port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1/uploads/"
        tus = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
        chunk, count = os.urandom(5 * MIB), 10
        created = requests.post(
            base, headers={**tus, "Upload-Length": str(count * len(chunk))}, timeout=30
        )
        assert created.status_code == 201, created.text
        location = requests.compat.urljoin(base, created.headers["Location"])
        patch = {**tus, "Content-Type": "application/offset+octet-stream"}
        with requests.Session() as session:

            def send(index: int) -> None:
                answer = session.patch(
                    location,
                    data=chunk,
                    headers={**patch, "Upload-Offset": str(index * len(chunk))},
                    timeout=30,
                )
                assert answer.status_code == 204, answer.text

            send(0)  # the first request's imports and connections are not the point
            before = page_faults(process.pid)
            for index in range(1, count):
                send(index)
            per_patch = (page_faults(process.pid) - before) / (count - 1)
    finally:
        stop(process)
    assert per_patch < 120, f"{per_patch:.0f} page faults per 5 MiB PATCH"
