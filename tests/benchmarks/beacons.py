"""Beacon ingestion: what 500 viewers' beacons a minute cost the server, as a share of one core.

    python tests/benchmarks/beacons.py [--viewers 500] [--minutes 2] [--workers 2]

Starts the web server as production runs it on one machine (uvicorn, ``--workers`` processes)
on PostgreSQL (a scratch database on 127.0.0.1:5432) and Redis (127.0.0.1:6379, database 3:
cache and throttles), with a ready content (a published job; beacons never read media). Each
of ``--viewers`` anonymous viewers first asks for playback (its view session and cookie; not
measured), then sends one beacon a minute for ``--minutes`` minutes, spread evenly over each
minute as independent players would, each from its own address (the load generator is a
trusted proxy that names it in X-Forwarded-For): the first with ``start`` (TTFF), the
rendition, a stall and 60 s watched (a new session row and a counted view), the later ones
60 s watched (one upsert).

Measured as tests/benchmarks/load.py measures server CPU per request: the CPU seconds of the
web server's processes, the PostgreSQL backends of the scratch database (not the other
databases' of this shared machine) and Redis over the wall time of the run, plus the CPU of
each minute's rollup (``views_rollup``, as beat runs it; its own process time and its
PostgreSQL backend's, not Python's start-up). Nothing idle is subtracted. For scale, it also
prints what an empty Django request (GET /healthz) costs the web server. Goal: < 5 % of one
core.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.load import drop_database, served_stack_env  # noqa: E402
from tests.support.processes import manage, start_web, stop  # noqa: E402

GOAL = 0.05
REDIS_URL = "redis://127.0.0.1:6379/3"


def server_cpu(session: int, database: str) -> dict[str, float]:
    """CPU seconds used so far by the web server's processes (its session), the PostgreSQL
    backends connected to ``database`` (not other databases' on this shared machine, nor the
    server's own background processes) and Redis (shared: all of it is counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = {"web": 0.0, "postgres": 0.0, "redis-server": 0.0}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            title = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        used = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        if int(fields[3]) == session:
            total["web"] += used
        elif name == "postgres" and f" {database} " in title:
            total["postgres"] += used
        elif name == "redis-server":
            total["redis-server"] += used
    return total


def ready_content(env: dict) -> str:
    """A ready content with a published job (its media is never read here)."""
    manage(env, "migrate", "--noinput", "-v", "0")
    out = manage(
        env,
        "shell",
        "-c",
        "from apps.content.models import Content, ContentStatus;"
        "from apps.transcode.models import JobState, TranscodeJob;"
        "from django.contrib.auth import get_user_model;"
        "owner = get_user_model().objects.create_user('beaconer');"
        "c = Content.objects.create(owner=owner, title='Beacons', status=ContentStatus.READY,"
        " duration=600);"
        "job = TranscodeJob.objects.create(content=c, attempt=1, state=JobState.SUCCEEDED,"
        " output_prefix='x/');"
        "c.published_job = job; c.save(update_fields=['published_job']);"
        "print('CONTENT', c.id)",
    )
    return re.search(r"CONTENT (\S+)", out).group(1)


def sessions(port: int, content: str, viewers: int) -> list[str]:
    """One playback grant per viewer (no cookie kept: each is a new anonymous viewer)."""
    found = []
    for index in range(viewers):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/contents/{content}/playback/",
            method="POST",
            headers={"X-Forwarded-For": address_of(index)},
        )
        with urllib.request.urlopen(request) as response:
            found.append(json.loads(response.read())["view_session"])
    return found


def body(session: str, first: bool) -> bytes:
    events = [{"type": "watched", "seconds": 60}]
    if first:
        events = [
            {"type": "start", "ttff_ms": 700},
            {"type": "rendition", "height": 720},
            {"type": "rebuffer", "seconds": 0.8},
            *events,
        ]
    return json.dumps({"session": session, "events": events}).encode()


def address_of(index: int) -> str:
    return f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"


async def post(port: int, path: str, payload: bytes, address: str) -> int:
    """One beacon on its own connection, as sendBeacon from a separate browser sends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        f"X-Forwarded-For: {address}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


async def send_minute(port: int, content: str, all_sessions: list[str], first: bool):
    """Each viewer's beacon, the viewers spread evenly over one minute of wall time."""
    path = f"/api/v1/contents/{content}/beacons/"
    started = time.perf_counter() + 0.1
    statuses: dict[int, int] = {}
    slot = 60 / len(all_sessions)

    async def one(index: int):
        await asyncio.sleep(max(0.0, started + index * slot - time.perf_counter()))
        status = await post(port, path, body(all_sessions[index], first=first), address_of(index))
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(len(all_sessions))))
    # The wall time is the whole minute: the last viewer's slot ends it.
    await asyncio.sleep(max(0.0, started + 60 - time.perf_counter()))
    return statuses, time.perf_counter() - started


async def floor(port: int, count: int) -> None:
    """``count`` GETs of /healthz (Django's least work: middleware, no query), 8 at a time."""
    for start in range(0, count, 8):
        await asyncio.gather(*(get(port, "/healthz") for _ in range(min(8, count - start))))


async def get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


ROLLUP = """
import os, time
from django.db import connection
from apps.access.tasks import views_rollup
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
def backend_cpu():
    stat = open(f"/proc/{backend}/stat").read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
postgres, own = backend_cpu(), time.process_time()
done = views_rollup()
print("ROLLUP", time.process_time() - own, backend_cpu() - postgres, done)
"""


def rollup_cpu(env: dict) -> tuple[float, float]:
    """(the rollup's own CPU seconds, its PostgreSQL backend's), measured inside the shell
    that runs it (Python's and Django's start-up left out)."""
    out = manage(env, "shell", "-c", ROLLUP)
    own, postgres = re.search(r"ROLLUP (\S+) (\S+)", out).groups()
    return float(own), float(postgres)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()

    # Each viewer speaks from its own address, as players do: the load generator is a trusted
    # proxy naming it in X-Forwarded-For (rate limits and view caps per address).
    database, folder, port, env = served_stack_env(
        "sg-beacons-", args.redis_url, TRUSTED_PROXIES="127.0.0.1"
    )
    server = None
    try:
        content = ready_content(env)
        server = start_web(env, folder / "web.log", port, ["--workers", str(args.workers)])
        granted = sessions(port, content, args.viewers)
        session_id = os.getsid(server.pid)
        statuses: dict[int, int] = {}
        totals = {"cpu": 0.0, "wall": 0.0, "web": 0.0, "beacons": 0}
        print(f"{args.viewers} viewers, one beacon a minute each, {args.workers} uvicorn workers")
        for minute in range(args.minutes):
            cpu_before = server_cpu(session_id, database)
            answers, wall = asyncio.run(send_minute(port, content, granted, first=minute == 0))
            cpu = {k: v - cpu_before[k] for k, v in server_cpu(session_id, database).items()}
            own, postgres = rollup_cpu(env)  # beat's run at the end of the minute
            for status, count in answers.items():
                statuses[status] = statuses.get(status, 0) + count
            used = sum(cpu.values()) + own + postgres
            beacons = sum(answers.values())
            totals["cpu"] += used
            totals["wall"] += wall
            totals["web"] += cpu["web"]
            totals["beacons"] += beacons
            kind = "new viewers: start, a view" if minute == 0 else "continuing: watch time"
            split = ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items())
            print(
                f"minute {minute + 1} ({kind}): {beacons} beacons in {wall:.1f} s, {split}, "
                f"rollup {1000 * own:.0f} ms + PostgreSQL {1000 * postgres:.0f} ms: "
                f"{100 * used / wall:.2f} % of one core, {1000 * used / max(1, beacons):.2f} ms "
                "a beacon"
            )
        floor_before = server_cpu(session_id, database)["web"]
        asyncio.run(floor(port, 500))
        floor_web = (server_cpu(session_id, database)["web"] - floor_before) / 500
        ratio = totals["cpu"] / totals["wall"]
        print(
            f"answers {dict(sorted(statuses.items()))}; web CPU a beacon "
            f"{1000 * totals['web'] / max(1, totals['beacons']):.2f} ms, where an empty Django "
            f"request (GET /healthz on a new connection) costs {1000 * floor_web:.2f} ms"
        )
        verdict = "meets" if ratio < GOAL else "MISSES"
        print(
            f"beacon ingestion over {args.minutes} min: {100 * ratio:.2f} % of one core "
            f"(goal < {100 * GOAL:.0f} %, ratio to goal {ratio / GOAL:.2f}): {verdict} the goal"
        )
        if statuses.keys() != {204}:
            raise SystemExit(f"some beacons were not accepted: {statuses}")
    finally:
        if server is not None:
            stop(server)
        drop_database(database)


if __name__ == "__main__":
    main()
