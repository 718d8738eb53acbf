"""The soak benchmark's stack plumbing (tests/benchmarks/soak.py): fault proxies in a process of
their own, the Procfile's commands, a scratch database, and a poller that reads the database
directly while the stack reaches it through a proxy."""

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import ROOT, parent_of

ADMIN_DSN = "postgresql://root@127.0.0.1:5432/postgres"


# --- the fault proxies, in a process of their own ---------------------------------------------


def _proxy_main(conn, upstreams: dict[str, int]) -> None:
    from tests.support.faults import FaultProxy

    proxies = {name: FaultProxy(port).start() for name, port in upstreams.items()}
    conn.send({name: proxy.port for name, proxy in proxies.items()})
    while (message := conn.recv()) is not None:
        name, action = message
        if action != "count":
            getattr(proxies[name], action)()  # down, pause or up
        conn.send(proxies[name].connections)
    for proxy in proxies.values():
        proxy.close()


class Proxies:
    """FaultProxy instances in a forked child: their pumping threads do not share the load
    generator's GIL, and a slow harness cannot make the services look slow."""

    def __init__(self, upstreams: dict[str, int]) -> None:
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_proxy_main, args=(child, upstreams), daemon=True)
        self.process.start()
        self.ports: dict[str, int] = self.conn.recv()
        self.lock = threading.Lock()

    def set(self, name: str, action: str) -> int:
        """``action`` ("down", "pause", "up", or "count") on the proxy to ``name``; returns how
        many connections the stack has opened through it so far."""
        with self.lock:
            self.conn.send((name, action))
            return self.conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


# --- the stack --------------------------------------------------------------------------------


def procfile(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def create_database() -> str:
    import psycopg

    name = f"sg_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants' pids."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) in found:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- what the database says, polled directly (not through the proxies) -------------------------


class Poller(threading.Thread):
    """Once a second: every content's status and every upload's content, with the moment each
    content's status changed, read over a direct connection to the scratch database."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.status: dict[str, str] = {}
        self.upload_content: dict[str, str] = {}
        self.history: list[tuple[float, str, str | None, str]] = []  # (t, content, old, new)
        self.stopped = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stopped.wait(1.0):
                self.poll(conn)

    def poll(self, conn) -> None:
        now = time.monotonic()
        for content_id, status in conn.execute("SELECT id::text, status FROM content_content"):
            old = self.status.get(content_id)
            if old != status:
                self.history.append((now, content_id, old, status))
                self.status[content_id] = status
        for upload_id, content_id in conn.execute(
            "SELECT id::text, content_id::text FROM uploads_upload"
        ):
            self.upload_content[upload_id] = content_id


# --- memory of every stack process, sampled -----------------------------------------------------


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size of ``pids`` together: pages shared by a prefork parent and its
    children are counted once in all, where RSS would count them in each."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class MemorySampler(threading.Thread):
    """Every ``every`` s: each stack process's memory (its tree's PSS), with the phase it fell
    in; ``processes`` is read at each sample, so a restarted process is followed."""

    def __init__(self, processes: dict, phase: Callable[[], str], every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.processes, self.phase, self.every = processes, phase, every
        self.samples: list[tuple[float, str, str, int]] = []  # (t, phase, process, bytes)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            now, phase = time.monotonic(), self.phase()
            for name, process in list(self.processes.items()):
                if process.poll() is None:
                    self.samples.append((now, phase, name, pss_bytes(process_tree(process.pid))))
