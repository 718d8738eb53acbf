"""Delivery: public segments from nginx (the shipped config) vs plain nginx vs the token path.

    python tests/benchmarks/delivery.py [--seconds 4] [--rounds 5] [--connections 16]

Encodes a 20 s 720p clip at 2.8 Mb/s (the ladder's 720p cap; noise keeps x264 from squeezing
it) into CMAF: an init segment and 4 s fMP4 segments. The same bytes are then served three ways
in one run, each case getting the same requests (the init and every segment in turn, on
``connections`` keep-alive connections) from the same load generator, alternating cases for
``rounds`` rounds (medians printed; ratios are medians of each round's ratio):

(a) plain nginx: a bare ``server { root ...; sendfile on; }`` over the media folder, the peer;
(b) ``/public/`` through deploy/nginx/streamgate.conf, rendered as tests/support/nginx.py does
    and run by the same nginx process as (a) (deploy/nginx/nginx.conf, one more port);
(c) today's token path ``/stream/<token>/<content>/<name>`` on uvicorn (two workers, as the
    compose web service runs it; embedded settings), for a published content whose job folder
    holds the same files.

Then the same with the init segment alone (about 1 KB): there the cost of a request, not of
its bytes, is measured. Last, the key URL of an encrypted, gated content (apps/access/
content_keys.py) at a fixed 200 requests/s (open loop, latency from each request's scheduled
time): p50, p95 (goal < 10 ms) and p99, on web processes with Redis, first remembering
Django's yes (apps/access/key_decisions.py, the served setup) and then, as the baseline, with
every key request decided by Django's view (KEY_DECISION_SECONDS=0).

The load generator is wrk (Debian's; tests/nginx.sh --bench installs it): it is C with one
event loop per thread, so at these rates it measures the server, where an asyncio client in
Python would saturate its own core first (and cap (a) and (b) at the same number, hiding any
difference between them). Prints requests/s, MB/s and latency per case, then b/a (goal >= 0.95:
the shipped config costs nothing against bare nginx) and b/c (goal >= 3). The machine has two
cores for the servers and wrk alike, so each row also gives the CPU time per request of the
server (all processes of its session, from /proc) and of wrk: those hold when throughput is
squeezed by whatever else runs. On loopback the kernel's TCP work for both ends falls partly
on the sender, in every case alike.
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.media import ffmpeg  # noqa: E402
from tests.support.nginx import nginx_binary, nginx_server, prepare  # noqa: E402
from tests.support.processes import (  # noqa: E402
    embedded_env,
    free_port,
    manage,
    start_web,
    stop,
)

REDIS_URL = "redis://127.0.0.1:6379/13"  # the key URL runs; tests use 1, benchmarks others

CASES = {
    "a": "(a) plain nginx, plain folder",
    "b": "(b) nginx /public/ (shipped config)",
    "c": "(c) uvicorn /stream/<token>/",
}

# One line per run from wrk's own summary (Lua `done`): requests, bytes, microseconds, errors,
# latency p50 and p99 in microseconds.
WRK_SCRIPT = """
paths = {%(paths)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.bytes,
    summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

PUBLISH = """
from django.contrib.auth import get_user_model
from apps.content.models import Content, ContentStatus
from apps.transcode.models import JobState, TranscodeJob
owner = get_user_model().objects.create_user("deliverer")
content = Content.objects.create(owner=owner, title="Delivery", status=ContentStatus.READY,
                                 duration=20)
job = TranscodeJob.objects.create(content=content, attempt=1, state=JobState.SUCCEEDED,
                                  output_prefix="x/")
job.output_prefix = f"renditions/{content.id}/{job.id}/"
job.save(update_fields=["output_prefix"])
content.published_job = job
content.save(update_fields=["published_job"])
print("PUBLISHED", content.id, job.output_prefix)
"""


def encode(folder: Path) -> list[str]:
    """A 720p CMAF rendition in ``folder``; the init segment's and the segments' names."""
    folder.mkdir(parents=True)
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=20,noise=alls=30:allf=t",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "60",
        "-b:v", "2800k", "-maxrate", "2800k", "-bufsize", "5600k",
        "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init-720p.mp4",
        "-hls_segment_filename", str(folder / "seg-720p-%05d.m4s"),
        str(folder / "720p.m3u8"),
    )  # fmt: skip
    return ["init-720p.mp4", *sorted(p.name for p in folder.glob("seg-720p-*.m4s"))]


def session_cpu(session: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a session: the server
    under test (nginx's master and workers, or uvicorn's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields from 3 (state): session is field 6
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wrk(
    port: int, paths: list[str], *, seconds: float, connections: int, folder: Path, session: int
) -> dict:
    script = folder / "paths.lua"
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths)})
    server_before = session_cpu(session)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [
            "wrk", "--threads", "2", "--connections", str(connections),
            "--duration", f"{seconds:g}s", "--timeout", "10s", "--script", str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = session_cpu(session) - server_before
    client_cpu = sum(
        getattr(client_after, f) - getattr(client_before, f) for f in ("ru_utime", "ru_stime")
    )
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
    requests, size, micros, errors, p50, p99 = map(int, found.groups())
    return {
        "rate": requests / (micros / 1e6),
        "mbps": size / (micros / 1e6) / 1e6,
        "errors": errors,
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "server_ms": server_cpu / requests * 1000,
        "client_ms": client_cpu / requests * 1000,
    }


def check_same_bytes(urls: list[str], expected: bytes) -> None:
    """Every case answers the first segment with the encoded bytes (and 200)."""
    for url in urls:
        with urllib.request.urlopen(url) as response:
            assert response.status == 200, url
            assert response.read() == expected, f"{url} answered other bytes"


def publish(env: dict[str, str], media: Path, rendition: Path, port: int) -> str:
    """A ready content whose published job folder holds a copy of ``rendition``; the stream
    folder path (``/stream/<token>/<content>/``) its playback grant gives."""
    found = re.search(r"PUBLISHED (\S+) (\S+)", manage(env, "shell", "-c", PUBLISH))
    content_id, prefix = found.groups()
    shutil.copytree(rendition, media / prefix)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/contents/{content_id}/playback/", method="POST"
    )
    with urllib.request.urlopen(request) as response:
        hls_url = json.loads(response.read())["hls_url"]
    return "/" + hls_url.split("/", 3)[3].rsplit("/", 1)[0] + "/"


def report(title: str, runs: dict[str, list[dict]]) -> None:
    """Medians over the rounds per case, and the ratios against the goals."""
    print(
        f"\n{title}\n{'case':38} {'req/s':>7} {'MB/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'server CPU ms/req':>17} {'wrk CPU ms/req':>14}"
    )
    rates, costs = {}, {}
    for case, label in CASES.items():
        rates[case] = statistics.median(r["rate"] for r in runs[case])
        costs[case] = statistics.median(r["server_ms"] for r in runs[case])
        print(
            f"{label:38} {rates[case]:7.0f} "
            f"{statistics.median(r['mbps'] for r in runs[case]):6.0f} "
            f"{statistics.median(r['p50'] for r in runs[case]):7.2f} "
            f"{statistics.median(r['p99'] for r in runs[case]):7.2f} "
            f"{sum(r['errors'] for r in runs[case]):6d} {costs[case]:17.3f} "
            f"{statistics.median(r['client_ms'] for r in runs[case]):14.3f}"
        )

    def paired(top: str, bottom: str, key: str) -> float:
        """The median over rounds of the ratio within each round (neighbours in time)."""
        return statistics.median(
            t[key] / b[key] for t, b in zip(runs[top], runs[bottom], strict=True)
        )

    print(
        f"b/a = {paired('b', 'a', 'rate'):.2f} requests/s (goal >= 0.95), "
        f"b/c = {paired('b', 'c', 'rate'):.1f} requests/s (goal >= 3); server CPU per request: "
        f"a/b = {paired('a', 'b', 'server_ms'):.2f}, c/b = {paired('c', 'b', 'server_ms'):.1f}"
    )


KEYED = """
import time
from django.contrib.auth import get_user_model
from apps.access.models import WalletAccount
from apps.access.playback import playback_key_id, playback_keys
from apps.access.playback_tokens import KeyGrant, key_token_sign
from apps.content.models import Content, ContentStatus
from apps.transcode.keys import content_key_new
from apps.transcode.models import JobState, TranscodeJob
from apps.transcode.services.encrypting import Encrypted, encryption_save, job_public_prefix
account = "0x" + "57" * 20  # digits: the same in checksum case
viewer = get_user_model().objects.create_user("keyholder")
WalletAccount.objects.create(user=viewer, namespace="eip155", chain="eip155:1", address=account,
                             kind="key", address_key=f"eip155:{account}")
owner = get_user_model().objects.create_user("keymaker")
content = Content.objects.create(owner=owner, title="Keyed", status=ContentStatus.READY,
    duration=20, gate={"allowlist": {"accounts": [f"eip155:1:{account}"]}})
job = TranscodeJob.objects.create(content=content, attempt=1, state=JobState.SUCCEEDED,
                                  output_prefix=f"renditions/{content.id}/x/")
content.published_job = job
content.save(update_fields=["published_job"])
hls = content_key_new()
encryption_save(job, Encrypted(prefix=job_public_prefix(job), hls=hls, dash=content_key_new()))
kid = playback_key_id()
token = key_token_sign(KeyGrant(content_id=str(content.id), viewer=viewer.pk,
                                expires=int(time.time()) + 3600), kid=kid, key=playback_keys()[kid])
print("KEYURL", f"/keys/{content.id}/{hls.kid}.key?k={token}", hls.key.hex())
"""


async def _open_loop(port: int, path: str, *, rate: float, seconds: float, connections: int):
    """Requests sent on a fixed schedule (``rate`` per second) over keep-alive connections;
    each latency counted from the request's scheduled time, so a slow answer that delays the
    next ones is charged to them too (no coordinated omission). Returns (latencies in ms,
    bodies' sizes, statuses)."""
    import asyncio
    import time as clock

    total = int(rate * seconds)
    started = clock.perf_counter() + 0.2
    queue: asyncio.Queue = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(started + index / rate)
    latencies: list[float] = []
    statuses: list[int] = []
    sizes: list[int] = []
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                due = queue.get_nowait()
                await asyncio.sleep(max(0.0, due - clock.perf_counter()))
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = await reader.readexactly(length)
                latencies.append((clock.perf_counter() - due) * 1000)
                statuses.append(int(head.split(b" ", 2)[1]))
                sizes.append(len(body))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, sizes, statuses


def keyed(env: dict[str, str]) -> tuple[str, bytes]:
    """(key URL, key) of an encrypted content gated by an allowlist (decided without a chain,
    as a gate whose ownership answers are cached is) and a viewer it lets in."""
    found = re.search(r"KEYURL (\S+) ([0-9a-f]{32})", manage(env, "shell", "-c", KEYED))
    return found.group(1), bytes.fromhex(found.group(2))


def key_endpoint_latency(port: int, path: str, key: bytes, *, rate: float, seconds: float) -> dict:
    """The key URL fetched at ``rate`` per second, after a first fetch and 1 s of warm-up (each
    web process reads the key through Django once)."""
    import asyncio

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
            assert response.read() == key, "the key URL answered another key"
    except urllib.error.HTTPError as error:
        raise SystemExit(f"the key URL refused: {error.code} {error.read()[:300]!r}") from None
    asyncio.run(_open_loop(port, path, rate=rate, seconds=1, connections=8))  # warm-up
    latencies, sizes, statuses = asyncio.run(
        _open_loop(port, path, rate=rate, seconds=seconds, connections=8)
    )
    assert set(statuses) == {200}, set(statuses)
    assert set(sizes) == {16}, set(sizes)
    cut = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "p50": cut[49], "p95": cut[94], "p99": cut[98]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--key-rate", type=float, default=200)
    parser.add_argument("--key-seconds", type=float, default=15)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    if nginx_binary() is None or shutil.which("wrk") is None:
        sys.exit("delivery: needs nginx and wrk (tests/nginx.sh --bench installs both as root)")

    with tempfile.TemporaryDirectory(prefix="sg-bench-delivery-") as temporary:
        work = Path(temporary)
        media = work / "var" / "media"
        public_folder = "public/3f0c6a4e-8d1b-4c7e-9a2f-1e5d7b9c0a13/job-1/"
        names = encode(media / public_folder)
        sizes = [(media / public_folder / name).stat().st_size for name in names]

        web_port = free_port()
        env = embedded_env(
            work / "var",
            DJANGO_DEBUG="0",
            STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{web_port}",
            LOG_LEVEL="WARNING",
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        web = start_web(env, work / "web.log", web_port, extra=["--workers", "2"])
        try:
            stream_folder = publish(env, media, media / public_folder, web_port)
            peer_port = free_port()
            server = prepare(
                work / "nginx",
                upstream=f"127.0.0.1:{web_port}",
                static_root=str(work / "var" / "static"),
                media_root=str(media),
            )
            # One nginx for (a) and (b): the shipped site, and beside it the bare peer.
            site = server.prefix / "conf" / "bench-site.conf"
            site.write_text(
                f"include {server.prefix}/conf/streamgate.conf;\n"
                f"server {{\n    listen 127.0.0.1:{peer_port};\n    root {media};\n"
                "    sendfile on;\n    tcp_nopush on;\n}\n"
            )
            shipped = f"include {server.prefix}/conf/streamgate.conf;"
            nginx_conf = server.config.read_text()
            assert shipped in nginx_conf
            server.config.write_text(nginx_conf.replace(shipped, f"include {site};"))
            ports = {"a": peer_port, "b": server.port, "c": web_port}
            paths = {
                "a": [f"/{public_folder}{name}" for name in names],
                "b": [f"/{public_folder}{name}" for name in names],
                "c": [f"{stream_folder}{name}" for name in names],
            }
            with nginx_server(server):
                nginx_session = int((server.prefix / "nginx.pid").read_text())
                sessions = {"a": nginx_session, "b": nginx_session, "c": web.pid}
                first = (media / public_folder / names[1]).read_bytes()
                check_same_bytes(
                    [f"http://127.0.0.1:{ports[c]}{paths[c][1]}" for c in CASES], first
                )
                print(
                    f"{len(names)} files (init + {len(names) - 1} segments of 4 s, 720p at "
                    f"2.8 Mb/s, mean {statistics.mean(sizes) / 1e6:.2f} MB), wrk 2 threads, "
                    f"{args.connections} keep-alive connections, {args.seconds:g} s per case "
                    f"per round, {args.rounds} rounds; uvicorn with 2 workers; 2 cores shared"
                )

                def measure(workload: dict[str, list[str]]) -> dict[str, list[dict]]:
                    runs: dict[str, list[dict]] = {case: [] for case in CASES}
                    for case in CASES:  # warm-up: page cache, uvicorn's imports
                        wrk(ports[case], workload[case], seconds=1,
                            connections=args.connections, folder=work,
                            session=sessions[case])  # fmt: skip
                    for round_number in range(args.rounds):
                        # a b c, then c b a: a drift in the machine's load hits all alike.
                        for case in list(CASES)[:: 1 if round_number % 2 == 0 else -1]:
                            runs[case].append(
                                wrk(
                                    ports[case],
                                    workload[case],
                                    seconds=args.seconds,
                                    connections=args.connections,
                                    folder=work,
                                    session=sessions[case],
                                )  # fmt: skip
                            )
                    return runs

                segments = measure(paths)
                small = measure({case: paths[case][:1] for case in CASES})
        finally:
            stop(web)
        # The key URL twice on the same data: web processes with Redis remembering Django's yes
        # (apps/access/key_decisions.py), then with every key request through Django's view.
        path, key_bytes = keyed(env)
        keys = {}
        for mode, remember in (("remembered", "60"), ("Django", "0")):
            key_env = {**env, "REDIS_URL": args.redis_url, "KEY_DECISION_SECONDS": remember}
            web = start_web(key_env, work / f"web-{mode}.log", web_port, extra=["--workers", "2"])
            try:
                keys[mode] = key_endpoint_latency(
                    web_port, path, key_bytes, rate=args.key_rate, seconds=args.key_seconds
                )
            finally:
                stop(web)

    report("init + segments", segments)
    report(f"the init segment alone ({sizes[0]} bytes): the cost of a request", small)
    print(f"\nload average at the end (other work on this machine): {os.getloadavg()[0]:.1f}")
    print(
        f"\nkey URL (uvicorn, 2 workers, Redis), {args.key_rate:g} requests/s for "
        f"{args.key_seconds:g} s, open loop on 8 connections:"
    )
    for mode, key in keys.items():
        print(
            f"  {mode:10} {key['requests']} answered, p50 {key['p50']:.2f} ms, "
            f"p95 {key['p95']:.2f} ms{' (goal < 10)' if mode == 'remembered' else ''}, "
            f"p99 {key['p99']:.2f} ms"
        )
    print(f"  p95 Django/remembered = {keys['Django']['p95'] / keys['remembered']['p95']:.1f}x")


if __name__ == "__main__":
    main()
