"""Real processes for tests: the web server, Celery workers and Redis on free loopback ports."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "SENTRY_DSN",
    "DJANGO_SETTINGS_MODULE",
    "STREAMGATE_VAR_DIR",
)


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``manage.py args`` in a child process with ``env``; its stdout, or an assertion
    error that shows its stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh laptop: no service variables, local settings, ``var_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="streamgate.settings.local", STREAMGATE_VAR_DIR=str(var_dir))
    env.update(extra)
    return env


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s:\n{log.read_text()[-3000:]}")


def wait_for_log(text: str, *, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not logged after {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def spawned(
    args: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen]:
    """Run ``args`` in its own process group; on exit SIGTERM it, then SIGKILL if it lingers."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def start_web(
    env: dict[str, str], log: Path, port: int, extra: list[str] | None = None
) -> subprocess.Popen:
    """Start the web server (uvicorn, as `make run` does) on ``port`` and wait until it accepts
    connections; the caller stops it."""
    args = [
        str(BIN / "uvicorn"),
        "streamgate.asgi:application",
        "--http",
        "streamgate.http_protocol:HttpProtocol",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--no-server-header",
        "--no-proxy-headers",
        *(extra or []),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port, timeout=30, process=process, log=log)
    except BaseException:
        stop(process)
        raise
    return process


@contextmanager
def web_server(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[str]:
    """The web server serving streamgate.asgi; yields its base URL once it accepts connections."""
    port = port or free_port()
    process = start_web(env, log, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def celery_worker(
    env: dict[str, str],
    log: Path,
    *,
    queues: str,
    include: str | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    prefix: list[str] | None = None,
) -> Iterator[subprocess.Popen]:
    """A Celery worker consuming ``queues`` (comma-separated) with ``concurrency`` pool
    processes (prefork) or threads; yields once it is ready. ``prefix`` runs it through
    another program (``["taskset", "-c", "0"]``: pinned to a core)."""
    args = [
        *(prefix or []),
        str(BIN / "celery"),
        "--app",
        "streamgate",
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"test-{os.getpid()}-{free_port()}@%h",
    ]
    if include:
        args += ["--include", include]
    with spawned(args, env=env, log=log) as process:
        wait_for_log("ready.", timeout=60, process=process, log=log)
        yield process


@contextmanager
def redis_server(log: Path, port: int | None = None) -> Iterator[int]:
    """A throwaway redis-server on a free port that keeps nothing on disk."""
    port = port or free_port()
    args = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with spawned(args, env=dict(os.environ), log=log) as process:
        wait_for_port(port, timeout=10, process=process, log=log)
        yield port


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body) for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def processes_with(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
