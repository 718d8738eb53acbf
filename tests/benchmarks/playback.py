"""Playback: token-checked segment serving vs plain static views, and gate decisions.

    python tests/benchmarks/playback.py [--seconds 5] [--rounds 3] [--connections 8]

Part 1 starts the web server (uvicorn, embedded settings in a temporary folder) with
``tests.support.bench_settings``, whose URLconf adds two plain views next to StreamGate's own:
``/plain/<path>`` sends the stored file exactly as the stream view does but checks no token, and
``/static-serve/<path>`` is Django's ``django.views.static.serve``. It encodes a generated clip
with ``manage.py ingest``, takes the signed HLS URL it prints, and has ``connections`` keep-alive
HTTP/1.1 clients fetch the same 720p segments for ``seconds`` through each route, alternating
routes for ``rounds`` rounds. Prints requests/s and p95 per route and the ratios.
Goal: token-checked >= 0.9 of the plain rate.

Part 2 decides a two-condition gate (ERC-721 and ERC-1155 held) on an in-process py-evm chain
with the ownership cache in Redis (127.0.0.1:6379, database 15, when it answers; else the
embedded file cache), uncached (cache emptied before each decision: two RPC calls) and cached.
Goal: a cached decision under 1 ms.
"""

import argparse
import asyncio
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    embedded_env,
    free_port,
    manage,
    start_web,
    stop,
)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


# --- part 1: segments ---------------------------------------------------------------------------


def prepare(var: Path, env: dict[str, str]) -> str:
    """Encode a 24 s 720p clip with `manage.py ingest`; returns the signed HLS master path."""
    from tests.support.media import make_video

    clip = make_video(var / "clip.mp4", seconds=24, size="1280x720", rate=30)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "create_api_token", "bench", "--creator")
    out = manage(env, "ingest", str(clip), "--title", "Bench", "--owner", "bench")
    url = re.search(r"HLS:\s+(\S+)", out).group(1)
    return "/" + url.split("/", 3)[3]


def segment_paths(base: str, master: str) -> tuple[list[str], str]:
    """The 720p media playlist's init + media segments as stream paths, and the job's storage
    prefix (``renditions/<content>/<job>/``) that the plain routes use."""
    text = urllib.request.urlopen(base + master).read().decode()
    folder = master.rsplit("/", 1)[0] + "/"
    playlists = [line for line in text.splitlines() if line and not line.startswith("#")]
    chosen = next((p for p in playlists if "720" in p), playlists[0])
    media = urllib.request.urlopen(base + folder + chosen).read().decode()
    names = re.findall(r'URI="([^"]+)"', media)  # the init segment (#EXT-X-MAP)
    names += [line for line in media.splitlines() if line and not line.startswith("#")]
    return [folder + name for name in names]


async def _client(port: int, paths: list[str], offset: int, until: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    index = offset
    try:
        while time.perf_counter() < until:
            path = paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if not match:
                raise RuntimeError(f"no Content-Length from {path}: {head[:200]!r}")
            body = await reader.readexactly(int(match.group(1)))
            out["latencies"].append(time.perf_counter() - started)
            out["bytes"] += len(body)
            if status != 200:
                out["errors"] += 1
    finally:
        writer.close()


async def _load(port: int, paths: list[str], seconds: float, connections: int) -> dict:
    out = {"latencies": [], "bytes": 0, "errors": 0}
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(port, paths, i, until, out) for i in range(connections)))
    out["elapsed"] = time.perf_counter() - started
    return out


def segments(args) -> None:
    with tempfile.TemporaryDirectory(prefix="sg-bench-playback-") as folder:
        var = Path(folder)
        port = free_port()
        env = embedded_env(
            var,
            DJANGO_SETTINGS_MODULE="tests.support.bench_settings",
            DJANGO_DEBUG="0",
            MEDIA_ENCRYPTION="0",  # the token path's segments (encrypted ones: delivery.py)
            STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            LOG_LEVEL="WARNING",
        )
        master = prepare(var, env)
        server = start_web(env, var / "web.log", port)
        try:
            base = f"http://127.0.0.1:{port}"
            token_paths = segment_paths(base, master)
            content_id = master.split("/")[3]
            job = next((var / "media" / "renditions" / content_id).iterdir()).name
            prefix = f"renditions/{content_id}/{job}/"
            names = [p.split(f"/{content_id}/", 1)[1] for p in token_paths]
            routes = {
                "token-checked /stream/": token_paths,
                "plain (same response, no token)": [f"/plain/{prefix}{n}" for n in names],
                "django static.serve": [f"/static-serve/{prefix}{n}" for n in names],
            }
            sizes = [(var / "media" / prefix / n).stat().st_size for n in names]
            print(
                f"{len(names)} files of the 720p rung (mean {statistics.mean(sizes) / 1024:.0f} "
                f"KiB), {args.connections} keep-alive connections, {args.seconds:g} s per route "
                f"per round, {args.rounds} rounds"
            )
            asyncio.run(_load(port, token_paths, 1, args.connections))  # warm-up
            results: dict[str, list[dict]] = {name: [] for name in routes}
            for _ in range(args.rounds):
                for name, paths in routes.items():
                    results[name].append(
                        asyncio.run(_load(port, paths, args.seconds, args.connections))
                    )
        finally:
            stop(server)
    rates = {}
    print(f"\n{'route':34} {'req/s':>8} {'MB/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}")
    for name, runs in results.items():
        rate = statistics.median(len(r["latencies"]) / r["elapsed"] for r in runs)
        mbps = statistics.median(r["bytes"] / r["elapsed"] / 1e6 for r in runs)
        latencies = [x for r in runs for x in r["latencies"]]
        errors = sum(r["errors"] for r in runs)
        rates[name] = rate
        print(
            f"{name:34} {rate:8.0f} {mbps:8.0f} {statistics.median(latencies) * 1000:8.2f} "
            f"{p95(latencies) * 1000:8.2f} {errors:7d}"
        )
    token, plain, serve = rates.values()
    print(f"\ntoken / plain = {token / plain:.2f} (goal >= 0.9)")
    print(f"token / django static.serve = {token / serve:.2f}")


# --- part 2: gate decisions ---------------------------------------------------------------------


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def gates(args) -> None:
    with tempfile.TemporaryDirectory(prefix="sg-bench-gates-") as folder:
        for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET"):
            os.environ.pop(name, None)
        use_redis = redis_answers()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="streamgate.settings.local",
            STREAMGATE_VAR_DIR=folder,
            DJANGO_DEBUG="0",
            LOG_LEVEL="WARNING",
        )
        if use_redis:
            os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
        import django

        django.setup()
        from django.conf import settings
        from django.core.cache import cache

        from apps.access.gates import Wallet, gate_validate
        from apps.access.playback import gate_evaluate
        from apps.chain.chains import ETH_TESTER_CHAIN_ID, web3_for
        from tests.support.evm import deploy_artifact

        chain = f"eip155:{ETH_TESTER_CHAIN_ID}"
        settings.CHAIN_RPC_URLS = {chain: "eth-tester://bench"}
        web3 = web3_for(chain)
        owner, holder = web3.eth.accounts[:2]
        nft721 = deploy_artifact(web3, "TestNFT721", "Pass", "PASS")
        nft1155 = deploy_artifact(web3, "TestNFT1155", "https://example.invalid/{id}.json")
        nft721.functions.mint(holder).transact({"from": owner})
        nft1155.functions.mint(holder, 7, 3).transact({"from": owner})
        gate = gate_validate(
            {
                "all": [
                    {"erc721": {"chain": chain, "contract": nft721.address}},
                    {
                        "erc1155": {
                            "chain": chain,
                            "contract": nft1155.address,
                            "token_id": "7",
                            "min_balance": "1",
                        }
                    },
                ]
            }
        )
        wallets = [Wallet("eip155", holder)]

        def timed(clear: bool, count: int) -> list[float]:
            spent = []
            for _ in range(count):
                if clear:
                    cache.clear()
                started = time.perf_counter()
                evaluation = gate_evaluate(gate=gate, wallets=wallets)
                spent.append(time.perf_counter() - started)
                assert evaluation.result is True, evaluation.explanation.as_dict()
            return spent

        timed(True, 5)
        uncached = timed(True, args.gate_decisions // 10)
        cache.clear()
        timed(False, 10)
        cached = timed(False, args.gate_decisions)
        cache.clear()
        where = "Redis" if use_redis else "the embedded file cache (Redis not reachable)"
        print(f"\ngate decisions (ERC-721 and ERC-1155 on py-evm), cache in {where}")
        print(f"{'':10} {'decisions':>9} {'median ms':>10} {'p95 ms':>8}")
        for name, values in (("uncached", uncached), ("cached", cached)):
            print(
                f"{name:10} {len(values):9d} {statistics.median(values) * 1000:10.3f} "
                f"{p95(values) * 1000:8.3f}"
            )
        ratio = statistics.median(uncached) / statistics.median(cached)
        print(
            f"\ncached decision {statistics.median(cached) * 1000:.3f} ms (goal < 1 ms), "
            f"{ratio:.0f}x faster than uncached"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--gate-decisions", type=int, default=2000)
    args = parser.parse_args()
    segments(args)
    gates(args)


if __name__ == "__main__":
    main()
