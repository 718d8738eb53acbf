"""`make run`'s process supervisor, for real: supervisord with the repository's supervisord.conf
runs the Procfile's processes on this test's own ports and var folder. A process killed with
SIGKILL comes back while the others keep serving; output is prefixed; SIGINT stops them all."""

import os
import re
import signal
import time

import pytest

from tests.support.processes import (
    BIN,
    ROOT,
    alive,
    embedded_env,
    free_port,
    http_get,
    manage,
    spawned,
    wait_for_port,
)

PROGRAMS = ("web", "worker", "webhooks", "beat", "flower")


def spawned_pids(log) -> dict[str, list[int]]:
    """Every pid supervisord started, per program, in order."""
    found: dict[str, list[int]] = {name: [] for name in PROGRAMS}
    for name, pid in re.findall(r"spawned: '(\w+)' with pid (\d+)", log.read_text()):
        found[name].append(int(pid))
    return found


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return http_get(url, timeout=5)[0] == 200
    except OSError:  # refused while the process restarts
        return False


def count(log, text: str) -> int:
    return log.read_text(errors="replace").count(text)


@pytest.fixture
def stack_env(tmp_path):
    web_port, flower_port = free_port(), free_port()
    (tmp_path / "prometheus").mkdir()
    env = embedded_env(
        tmp_path,
        WEB_PORT=str(web_port),
        FLOWER_PORT=str(flower_port),
        FLOWER_BASIC_AUTH="ops:s3cret-pass",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        SUPERVISOR_RUN_DIR=str(tmp_path),
    )
    env["PATH"] = f"{BIN}:{env['PATH']}"
    manage(env, "migrate", "--noinput")
    return env, web_port, flower_port


def test_a_killed_process_comes_back_and_the_others_keep_serving(stack_env, logs_dir):
    env, web_port, flower_port = stack_env
    log = logs_dir / "run.log"
    web = f"http://127.0.0.1:{web_port}/healthz"
    args = [str(BIN / "supervisord"), "--configuration", str(ROOT / "supervisord.conf")]
    try:
        with spawned(args, env=env, log=log) as supervisor:
            wait_for_port(web_port, timeout=60, process=supervisor, log=log)
            wait_for_port(flower_port, timeout=60, process=supervisor, log=log)
            wait_until(lambda: count(log, "worker | ") and count(log, " ready."), 60, "worker")
            wait_until(lambda: count(log, "beat   | "), 60, "beat")
            started = spawned_pids(log)
            assert all(len(pids) == 1 for pids in started.values()), started

            # The worker dies: the web keeps answering, and a new worker comes up.
            os.kill(started["worker"][0], signal.SIGKILL)
            wait_until(lambda: count(log, "exited: worker (terminated by SIGKILL"), 20, "exit")
            assert answers(web)
            wait_until(lambda: len(spawned_pids(log)["worker"]) == 2, 30, "a new worker")
            wait_until(lambda: count(log, " ready.") == 2, 60, "the new worker to be ready")

            # The web server dies: it comes back on its port; the new worker is untouched.
            os.kill(started["web"][0], signal.SIGKILL)
            wait_until(lambda: len(spawned_pids(log)["web"]) == 2, 30, "a new web server")
            wait_until(lambda: answers(web), 30, "the web server to answer")
            started = spawned_pids(log)
            assert [len(started[name]) for name in PROGRAMS] == [2, 2, 1, 1, 1]
            assert all(alive(pids[-1]) for pids in started.values())
            assert http_get(f"http://127.0.0.1:{flower_port}/")[0] == 401  # still behind auth

            # Ctrl-C: every process stops, then supervisord.
            os.kill(supervisor.pid, signal.SIGINT)
            assert supervisor.wait(60) == 0
        assert not [pid for pids in started.values() for pid in pids if alive(pid)]
        text = log.read_text()
        for name in PROGRAMS:
            assert f"stopped: {name}" in text
        # Every line a process printed carries its name.
        assert re.search(r"^web    \| INFO: +Uvicorn running on", text, re.MULTILINE)
        assert re.search(r"^flower \| ", text, re.MULTILINE)
    finally:  # nothing outlives a failed test, not even a process supervisord restarted
        spawned_at_all = spawned_pids(log) if log.exists() else {}
        for pid in (pid for pids in spawned_at_all.values() for pid in pids if alive(pid)):
            os.kill(pid, signal.SIGKILL)
