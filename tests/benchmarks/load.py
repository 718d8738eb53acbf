"""Load: a mixed workload against the running stack, websocket fan-out, and the latency curve.

    python tests/benchmarks/load.py [--seconds 10] [--rates 200,1000] [--sockets 500]

Starts the stack as production runs it on one machine: uvicorn (``--workers`` processes) and
a Celery worker on PostgreSQL (a scratch database on 127.0.0.1:5432) and Redis (127.0.0.1:6379,
database 3: cache, edge, channel layer, broker), media on disk. Encodes a clip with
`manage.py ingest`, creates 60 more contents and ``--viewers`` viewers with a bearer token each,
then:

1. Open loop at fixed arrival rates (``--rates`` requests/s, 64 connections, each a
   viewer's), first with the edge, then with the same stack restarted with EDGE_CACHE=0:
   the mixed workload, 40% catalog page (`GET /api/v1/contents/?status=ready`), 20% content
   detail, 10% playback token issuance (`POST …/playback/`), 30% segment fetches through the
   signed stream URL; and API reads alone. Meanwhile a creator's upload and encode run,
   writing their progress as the worker does (4 and 2 times a second). Prints requests/s
   served, API reads p50/p95/p99, errors, the edge's share, and the with/without ratios.
   Goal (#15): 1,000 req/s offered in the mixed workload, API reads p95 < 50 ms, 0 errors.
   Each server is first warmed up at the highest rate (its connection pools grow; printed,
   not counted). Every row also prints the server's CPU per request (web, PostgreSQL, Redis)
   and the load generator's. ``--workloads`` also takes one kind alone (segment, playback…).
2. ``--sockets`` websocket clients on one content's progress channel; 20 progress messages are
   sent through the channel layer (as a worker would) and each client's delay from send to
   receipt is recorded. Goal: p95 < 250 ms.
3. Every viewer's first reads (Django answers them), then the latency curve: 50 to 500
   concurrent closed-loop clients (each waits 250 ms between requests) on the read mix;
   p50/p95 per level, plotted to docs/load-curve.png.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    celery_worker,
    embedded_env,
    free_port,
    manage,
    start_web,
    stop,
)

REDIS_URL = "redis://127.0.0.1:6379/3"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the stack ----------------------------------------------------------------------------------


def create_database() -> str:
    import psycopg

    name = f"sg_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://root@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def served_stack_env(prefix: str, redis_url: str, **extra: str) -> tuple[str, Path, int, dict]:
    """A fresh database, folder and port for a served stack on PostgreSQL and Redis (flushed),
    and its environment: production-like settings, the playback limit out of the way,
    multiprocess metrics; ``extra`` adds to it. Returns (database, folder, port, env)."""
    import redis

    database = create_database()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    env = embedded_env(
        folder,
        DATABASE_URL=f"postgres://root@127.0.0.1:5432/{database}",
        REDIS_URL=redis_url,
        MEDIA_ENCRYPTION="0",  # segments through the token path, as measured before
        DJANGO_DEBUG="0",
        LOG_LEVEL="WARNING",
        STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PLAYBACK_RATE="100000/min",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"),
        **extra,
    )
    (folder / "prometheus").mkdir()
    redis.Redis.from_url(redis_url).flushdb()
    return database, folder, port, env


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://root@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(var: Path, env: dict, viewers: int) -> dict:
    """Migrate, a creator with a token, one encoded clip, 60 more contents, two of the creator's
    in progress, and ``viewers`` viewers with a token each."""
    from tests.support.media import make_video

    manage(env, "migrate", "--noinput", "-v", "0")
    token = manage(env, "create_api_token", "loader", "--creator").strip()
    clip = make_video(var / "clip.mp4", seconds=12, size="854x480", rate=30)
    out = manage(env, "ingest", str(clip), "--title", "Load", "--owner", "loader")
    hls = re.search(r"HLS:\s+(\S+)", out).group(1)
    content_id = hls.split("/")[-2]
    out = manage(
        env,
        "shell",
        "-c",
        "from apps.content.models import Content, ContentStatus;"
        "from django.contrib.auth import get_user_model;"
        "owner = get_user_model().objects.get(username='loader');"
        "Content.objects.bulk_create([Content(owner=owner, title=f'Film {i}',"
        " status=ContentStatus.READY) for i in range(60)]);"
        "print('BUSY', *(Content.objects.create(owner=owner, title=f'Work {i}', status=s).id"
        " for i, s in enumerate([ContentStatus.UPLOADING, ContentStatus.PROCESSING])))",
    )
    busy = last_line(out, "BUSY")
    tokens = manage(
        env,
        "shell",
        "-c",
        "from apps.access.services import api_token_create, user_get_or_create;"
        f"print('TOKENS', *(api_token_create(user=user_get_or_create(username=f'viewer{{i}}')"
        f"[0])[1] for i in range({viewers})))",
    )
    tokens = last_line(tokens, "TOKENS")
    return {
        "token": token,
        "viewers": tokens,
        "busy": busy,
        "content": content_id,
        "hls": "/" + hls.split("/", 3)[3],
    }


def last_line(output: str, tag: str) -> list[str]:
    """The words after ``tag`` on the line a shell command printed it (logs may precede it)."""
    line = [line for line in output.splitlines() if line.startswith(tag + " ")][-1]
    return line.split()[1:]


# --- a small HTTP/1.1 client --------------------------------------------------------------------


class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
                )
            lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            if method == "POST":
                lines.append("Content-Length: 0")
            try:
                self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt:
                    raise
                continue
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = await self.reader.readexactly(int(length.group(1))) if length else b""
            if re.search(rb"(?i)\r\nconnection:\s*close", head):
                self.writer.close()
                self.writer = None
            return status, body
        raise RuntimeError("unreachable")


def segment_paths(port: int, master: str) -> list[str]:
    import urllib.request

    base = f"http://127.0.0.1:{port}"
    text = urllib.request.urlopen(base + master).read().decode()
    folder = master.rsplit("/", 1)[0] + "/"
    playlist = next(line for line in text.splitlines() if line and not line.startswith("#"))
    media = urllib.request.urlopen(base + folder + playlist).read().decode()
    names = [line for line in media.splitlines() if line and not line.startswith("#")]
    return [folder + name for name in names]


def mix(ctx: dict) -> list[tuple[str, str, str]]:
    """(label, method, path) choices in their proportions."""
    catalog = ("catalog", "GET", "/api/v1/contents/?status=ready&page_size=20")
    detail = ("detail", "GET", f"/api/v1/contents/{ctx['content']}/")
    playback = ("playback", "POST", f"/api/v1/contents/{ctx['content']}/playback/")
    segments = [("segment", "GET", path) for path in ctx["segments"]]
    return [catalog] * 4 + [detail] * 2 + [playback] + [random.choice(segments) for _ in range(3)]


async def open_loop(
    port: int,
    ctx: dict,
    rate: float,
    seconds: float,
    connections: int = 64,
    workload: str = "mixed",
):
    """``rate`` requests/s spread over ``connections``; latency measured from the scheduled
    start, so a server that falls behind shows it (no coordinated omission). ``workload``:
    "mixed" (the whole mix), "reads" (API reads only) or one label of the mix alone."""
    results: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    choices = mix(ctx)
    if workload == "reads":
        choices = [c for c in choices if c[0] in ("catalog", "detail")]
    elif workload != "mixed":  # one kind alone (segment, playback…): what it costs by itself
        choices = [c for c in choices if c[0] == workload]
    started = time.perf_counter() + 0.2
    interval = connections / rate

    async def client(index: int):
        connection = Connection(port)
        headers = {"Authorization": f"Bearer {ctx['viewers'][index % len(ctx['viewers'])]}"}
        due = started + index * interval / connections
        while due < started + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            label, method, path = random.choice(choices)
            try:
                status, _ = await connection.request(method, path, headers)
                ok = status == 200
            except (OSError, asyncio.IncompleteReadError):
                ok = False
            results.setdefault(label, []).append(time.perf_counter() - due)
            if not ok:
                errors[label] = errors.get(label, 0) + 1
            due += interval

    await asyncio.gather(*(client(i) for i in range(connections)))
    return results, errors, time.perf_counter() - started


def warm_up(port: int, ctx: dict, rate: float, seconds: float = 4) -> None:
    """A freshly started server at the highest rate before anything is measured: its connection
    pools (Django's and the edge's, in each worker) grow to what that rate needs, each new
    PostgreSQL connection a process fork. Printed, not counted in the rows."""
    asyncio.run(open_loop(port, ctx, rate=50, seconds=2))
    results, errors, elapsed = asyncio.run(open_loop(port, ctx, rate, seconds))
    reads = results.get("catalog", []) + results.get("detail", [])
    served = sum(len(v) for v in results.values()) / elapsed
    print(
        f"warm-up from idle, mixed at {rate:.0f} req/s for {seconds:g} s: served {served:.0f}, "
        f"API reads p95 {pct(reads, 0.95) * 1000:.0f} ms, errors {sum(errors.values())} "
        "(not counted below)"
    )


def server_cpu(session: int) -> dict[str, float]:
    """CPU seconds used so far by the web server's processes (uvicorn started in its own session,
    its workers), every PostgreSQL process and Redis: what serving costs, whoever does it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = {"web": 0.0, "postgres": 0.0, "redis-server": 0.0}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        used = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        if int(fields[3]) == session:
            total["web"] += used
        elif name in total:
            total[name] += used
    return total


def mixed_row(
    port: int, ctx: dict, edge: str, workload: str, rate: float, seconds: float, session: int
):
    """One open-loop run, printed as a table row; its figures returned."""
    before = edge_counts(port)
    cpu_before = server_cpu(session)
    client_before = sum(os.times()[:2])
    results, errors, elapsed = asyncio.run(open_loop(port, ctx, rate, seconds, workload=workload))
    cpu = {k: v - cpu_before[k] for k, v in server_cpu(session).items()}
    client = sum(os.times()[:2]) - client_before
    after = edge_counts(port)
    everything = [v for values in results.values() for v in values]
    reads = results.get("catalog", []) + results.get("detail", [])
    hits, misses = (after[k] - before[k] for k in ("hit", "miss"))
    row = {
        "edge": edge,
        "workload": workload,
        "rate": rate,
        "served": len(everything) / elapsed,
        "p95": pct(reads, 0.95) * 1000,
        "cpu": 1000 * sum(cpu.values()) / max(1, len(everything)),
    }
    print(
        f"{edge:5} {workload:8} {rate:8.0f} {row['served']:7.0f} {pct(reads, 0.5) * 1000:10.1f} "
        f"{row['p95']:10.1f} {pct(reads, 0.99) * 1000:10.1f} "
        f"{pct(everything, 0.95) * 1000:8.1f} {sum(errors.values()):7d} "
        f"{100 * hits / max(1, hits + misses):8.0f}% {row['cpu']:7.2f}"
    )
    split = ", ".join(f"{k} {1000 * v / max(1, len(everything)):.2f}" for k, v in cpu.items())
    print(
        f"      server CPU per request, ms: {split}; the load generator "
        f"{1000 * client / max(1, len(everything)):.2f}"
    )
    if workload == "mixed":
        for label in ("catalog", "detail", "playback", "segment"):
            values = results.get(label, [])
            print(
                f"      {label:10} {len(values) / elapsed:7.1f}/s "
                f"p50 {pct(values, 0.5) * 1000:8.1f} p95 {pct(values, 0.95) * 1000:8.1f} ms, "
                f"errors {errors.get(label, 0)}"
            )
    return row


async def closed_loop(port: int, ctx: dict, clients: int, seconds: float, think: float = 0.25):
    latencies: list[float] = []
    failures = 0
    choices = [c for c in mix(ctx) if c[0] in ("catalog", "detail")]
    until = time.perf_counter() + seconds

    async def client(index: int):
        nonlocal failures
        connection = Connection(port)
        headers = {"Authorization": f"Bearer {ctx['viewers'][index % len(ctx['viewers'])]}"}
        await asyncio.sleep(random.random() * think)
        while time.perf_counter() < until:
            _, method, path = random.choice(choices)
            begun = time.perf_counter()
            try:
                status, _ = await connection.request(method, path, headers)
                failures += status != 200
            except (OSError, asyncio.IncompleteReadError):
                failures += 1
            latencies.append(time.perf_counter() - begun)
            await asyncio.sleep(think)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, failures, time.perf_counter() - started


class BusyCreator:
    """A creator's upload and encode in progress: progress written as the worker writes it
    (UPLOAD_PROGRESS_INTERVAL 0.25 s, TRANSCODE_PROGRESS_INTERVAL 0.5 s)."""

    def __init__(self, contents: list[str]):
        import threading

        self.contents = contents
        self.writes = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def run(self) -> None:
        from django.db import connection

        from apps.content.services import content_progress_set

        uploading, encoding = self.contents
        tick = 0
        while not self.stopped.wait(0.25):
            tick += 1
            content_progress_set(content_id=uploading, progress=tick % 100)
            self.writes += 1
            if tick % 2 == 0:
                content_progress_set(content_id=encoding, progress=tick % 100)
                self.writes += 1
        connection.close()


def edge_counts(port: int) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    counts = {"hit": 0.0, "miss": 0.0}
    for outcome in counts:
        found = re.search(rf'streamgate_edge_responses_total{{outcome="{outcome}"}} (\S+)', text)
        counts[outcome] = float(found.group(1)) if found else 0.0
    return counts


async def first_reads(port: int, ctx: dict, concurrency: int = 8) -> list[float]:
    """Every viewer reads the catalog and the detail once, so the curve that follows measures
    steady state rather than which tokens happen to be new at each level."""
    latencies: list[float] = []
    paths = [path for label, _, path in mix(ctx) if label in ("catalog", "detail")]
    queue = [(token, path) for token in ctx["viewers"] for path in dict.fromkeys(paths)]

    async def reader():
        connection = Connection(port)
        while queue:
            token, path = queue.pop()
            begun = time.perf_counter()
            await connection.request("GET", path, {"Authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return latencies


# --- websockets ---------------------------------------------------------------------------------


async def fan_out(port: int, ctx: dict, sockets: int, messages: int = 20) -> tuple[list, int]:
    import websockets
    from channels.layers import get_channel_layer

    from apps.content.realtime import EVENT_TYPE, content_group

    url = f"ws://127.0.0.1:{port}/ws/contents/{ctx['content']}/"
    headers = {"Authorization": f"Bearer {ctx['token']}"}
    origin = f"http://127.0.0.1:{port}"
    delays: list[float] = []
    received = [0]
    ready = asyncio.Event()
    connected = [0]

    dropped = [0]

    async def listener():
        try:
            async with websockets.connect(
                url, additional_headers=headers, origin=origin, open_timeout=60, max_queue=None
            ) as ws:
                json.loads(await ws.recv())  # the current status, first
                connected[0] += 1
                if connected[0] == sockets:
                    ready.set()
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("type") != "transcode":
                        continue
                    delays.append(time.time() - message["sent_at"])
                    received[0] += 1
                    if message["percent"] >= messages - 1:
                        return
        except (TimeoutError, OSError, websockets.ConnectionClosed):
            dropped[0] += 1  # counted as errors: every message it did not get is missing
            if connected[0] + dropped[0] >= sockets:
                ready.set()

    tasks = []
    for index in range(sockets):
        tasks.append(asyncio.create_task(listener()))
        if index % 50 == 49:
            await asyncio.sleep(0.2)  # connect in waves, as browsers would
    await asyncio.wait_for(ready.wait(), timeout=120)
    layer = get_channel_layer()
    group = content_group(ctx["content"])
    for n in range(messages):
        message = {"type": "transcode", "stage": "encode", "percent": n, "sent_at": time.time()}
        await layer.group_send(group, {"type": EVENT_TYPE, "message": message})
        await asyncio.sleep(0.25)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return delays, received[0], dropped[0]


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    import uvloop

    # The load generator shares the two cores with the stack: the lighter its event loop, the
    # more of them the server gets (uvicorn runs on uvloop too).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rates", default="200,1000", help="open-loop rates, requests/s")
    parser.add_argument("--workloads", default="mixed,reads", help="mixed, reads, or both")
    parser.add_argument("--sockets", type=int, default=500, help="0: no fan-out")
    parser.add_argument("--levels", default="50,100,200,300,500", help="empty: no curve")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--edges", default="on,off", help="open-loop rows with the edge on, off")
    parser.add_argument("--viewers", type=int, default=200, help="bearer tokens in use")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "load-curve.png"))
    args = parser.parse_args()

    database, folder, port, env = served_stack_env("sg-load-", REDIS_URL)
    server = None
    stack = contextlib.ExitStack()
    try:
        ctx = prepare(folder, env, args.viewers)
        server = start_web(env, folder / "web.log", port, ["--workers", str(args.workers)])
        # The stack as it runs: a Celery worker on every queue (idle here; the busy creator's
        # progress writes below are what a worker's upload and encode do to the cache).
        queues = "uploads,transcode,chain,default"
        stack.enter_context(celery_worker(env, folder / "worker.log", queues=queues))
        ctx["segments"] = segment_paths(port, ctx["hls"])
        os.environ.update({k: v for k, v in env.items() if k not in ("PATH",)})
        import django

        django.setup()

        rates = [float(r) for r in args.rates.split(",")]
        warm_up(port, ctx, max(rates))
        work = BusyCreator(ctx["busy"])
        work.start()
        runs_started = time.perf_counter()
        rows = []
        print(
            f"open loop, {args.seconds:g} s per row, 64 connections, {args.workers} uvicorn "
            "worker processes and a Celery worker; an upload and an encode write progress "
            "throughout"
        )
        print(
            f"{'edge':5} {'workload':8} {'offered':>8} {'served':>7} {'reads p50':>10} "
            f"{'reads p95':>10} {'reads p99':>10} {'all p95':>8} {'errors':>7} {'edge hits':>9} "
            f"{'cpu ms':>7}"
        )
        for edge in args.edges.split(","):
            if edge == "off":  # the same stack with the edge turned off, same data and tokens
                stop(server)
                server = start_web(
                    {**env, "EDGE_CACHE": "0"},
                    folder / "web-no-edge.log",
                    port,
                    ["--workers", str(args.workers)],
                )
                asyncio.run(first_reads(port, ctx))
                warm_up(port, ctx, min(rates))  # what it can serve: a backlog would spill over
            for workload in args.workloads.split(","):
                for rate in rates:
                    row = mixed_row(port, ctx, edge, workload, rate, args.seconds, server.pid)
                    rows.append(row)
        stop(server)  # the edge back on for what follows
        server = start_web(env, folder / "web.log", port, ["--workers", str(args.workers)])
        asyncio.run(first_reads(port, ctx))
        runs_took = time.perf_counter() - runs_started
        on = {(r["workload"], r["rate"]): r for r in rows if r["edge"] == "on"}
        for row in rows:
            if row["edge"] == "off" and (row["workload"], row["rate"]) in on:
                with_edge = on[(row["workload"], row["rate"])]
                print(
                    f"{row['workload']} at {row['rate']:.0f}/s: reads p95 with the edge / "
                    f"without = {with_edge['p95'] / row['p95']:.2f}, served "
                    f"{with_edge['served']:.0f} vs {row['served']:.0f} req/s"
                )
        print(
            f"progress writes during the runs: {work.writes} "
            f"({work.writes / runs_took:.1f}/s over {runs_took:.0f} s)"
        )

        if args.sockets:
            delays, received, dropped = asyncio.run(fan_out(port, ctx, args.sockets))
            print(
                f"\nwebsocket fan-out: {args.sockets} clients x 20 messages, {received} received, "
                f"{args.sockets * 20 - received} missing, {dropped} connections dropped; "
                f"delay p50 {pct(delays, 0.5) * 1000:.1f} ms, "
                f"p95 {pct(delays, 0.95) * 1000:.1f} ms, "
                f"p99 {pct(delays, 0.99) * 1000:.1f} ms (goal p95 < 250 ms)"
            )

        if args.levels:
            cold = asyncio.run(first_reads(port, ctx))
            print(
                f"\nfirst reads of each viewer's token (Django answers, the edge keeps the page): "
                f"{len(cold)} reads, p50 {pct(cold, 0.5) * 1000:.1f} ms, "
                f"p95 {pct(cold, 0.95) * 1000:.1f} ms"
            )
            levels = [int(n) for n in args.levels.split(",")]
            curve = []
            print(f"\n{'clients':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}")
            for clients in levels:
                run = closed_loop(port, ctx, clients, args.seconds)
                latencies, failures, spent = asyncio.run(run)
                curve.append((clients, pct(latencies, 0.5) * 1000, pct(latencies, 0.95) * 1000))
                print(
                    f"{clients:8d} {len(latencies) / spent:7.0f} {curve[-1][1]:8.1f} "
                    f"{curve[-1][2]:8.1f} {failures:7d}"
                )
            plot(curve, args.plot)
            print(f"\ncurve plotted to {args.plot}")
        work.stop()
    finally:
        stack.close()
        if server is not None:
            stop(server)
        drop_database(database)


def plot(curve: list[tuple[int, float, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [c for c, _, _ in curve]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    axes.plot(clients, [p50 for _, p50, _ in curve], marker="o", label="p50")
    axes.plot(clients, [p95 for _, _, p95 in curve], marker="o", label="p95")
    axes.axhline(50, color="grey", linestyle="--", linewidth=1, label="50 ms goal")
    axes.set_xlabel("concurrent clients (each waits 250 ms between requests)")
    axes.set_ylabel("API read latency (ms)")
    axes.set_title("StreamGate API reads, two uvicorn workers, 2 cores (client included)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


if __name__ == "__main__":
    main()
