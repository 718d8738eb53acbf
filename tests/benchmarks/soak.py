"""Soak: uploads, encodes, playback and wallet sign-ins at a steady rate while Redis and
PostgreSQL each go away, a worker is killed and restarted, and one RPC provider is down.

    python tests/benchmarks/soak.py [--minutes 5] [--outage 20]
        [--faults redis-down,pg-down,worker-kill,rpc-down=60] [--wallets 20]
        [--rate 6] [--creators 2] [--upload-every 12] [--drain-timeout 300]

The stack in its production shape on one machine, started as the Procfile starts it: uvicorn
(``--web-workers`` processes, WEB_CONCURRENCY), a Celery worker (prefork, every queue) and beat,
on a scratch PostgreSQL database (127.0.0.1:5432) and a throwaway redis-server (cache, edge,
channel layer, broker, results); media on local disk. The stack reaches both services only
through FaultProxy (tests/support/faults.py), run in a child process of its own, so that a
service can be made unavailable without touching the machine's shared servers: ``down`` resets
every connection and refuses new ones (the service died), ``pause`` answers nothing (it hangs).

The chain (``--wallets`` > 0): ``npx hardhat node`` with an ERC-721 collection, one token per
soak wallet; CHAIN_RPC_URLS names two providers for it, two FaultProxy instances in front of the
one node, so that one of them (``rpc-a``) can go away while the other answers. One seeded content
is gated by the collection.

Load, all along (rates are options; the load generator shares the two cores with the stack):
- creators (``--creators``), each starting an upload every ``--upload-every`` s: a generated
  clip (tests/support/media.py) made unique by an MP4 ``free`` box of random bytes, sent with
  tuspy in ``--chunk-kib`` PATCHes ``--patch-pause`` s apart; after an error the client waits
  (Retry-After when sent, else a capped backoff), asks the offset with HEAD and goes on; one
  more upload starts ``--straddle`` s before each fault, so that one is in flight when it strikes;
- viewers (Poisson arrivals, ``--rate`` visits/s): 15% are a wallet's sign-in with Ethereum
  (nonce, signed EIP-4361 message) followed by watching the gated content with the token it
  got, a gate decision that asks the chain; the others, each a viewer's bearer token, 40% read
  the catalog, 30% a content's detail, 30% watch (playback grant, master playlist, media
  playlist, init segment and one media segment of a ready content that is not gated);
- /readyz twice a second.

Timeline: steady, then for each fault in ``--faults`` the service is unavailable ``--outage`` s
(or the seconds after ``=``: ``rpc-down=60``) followed by a recovery period, then steady again
(``--minutes`` in all), then a drain: no new uploads, viewers go on, until every upload has
finished and every content is ready or failed (at most ``--drain-timeout`` s). ``worker-kill``
sends SIGKILL to the Celery worker and its pool (tasks in hand are lost to it; acks_late leaves
them in the broker, and transcode_reap finds jobs whose heartbeat stopped), and starts a new
worker when its outage ends.

Prints requests by outcome (per phase and per kind), latency p50/p95 per phase and kind, each
dependency's recovery after ``up()``, uploads, contents, encodes, sha256 checks, and every 500
and stuck content with the log lines that explain it (every request is also written to
requests.jsonl next to the logs, which are kept when a goal is missed). When a goal is missed, or
the drain ends with work unfinished, the stack is examined before it is stopped
(tests/support/soak_forensics.py): pg-activity.txt (the database's sessions, who blocks whom,
its locks) and py-spy-<process>-<pid>.txt (every stack process's threads), named in the report.
Goals (exit status 1
when one is missed): no 5xx other than 503; no 5xx at all, 503 included, outside the Redis and
PostgreSQL outages and their recovery (a killed worker and a lost RPC provider must not show);
every 503 to a client with Retry-After (/readyz answers load balancers, and is reported apart);
/readyz 200 within ``--recovery-goal`` s of each ``up()``; every upload finished; no stuck
content (each ready, or failed with a message); no failed encode; every finished upload's
sha256 equal to its stored source's (the file, the content's and the upload's rows); the
stack's processes still running; each process's memory (PSS of its process tree) in the last
steady phase within 10% of the first.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import soak_forensics as forensics  # noqa: E402
from tests.support import soak_report as report  # noqa: E402
from tests.support.jsonrpc import hardhat_node  # noqa: E402
from tests.support.processes import (  # noqa: E402
    BIN,
    embedded_env,
    free_port,
    manage,
    redis_server,
    spawned,
    wait_for_log,
    wait_for_port,
)
from tests.support.soak_chain import CHAIN, collection_for, wallet_keys  # noqa: E402
from tests.support.soak_clients import (  # noqa: E402
    Recorder,
)
from tests.support.soak_load import Phase, Soak  # noqa: E402
from tests.support.soak_stack import (  # noqa: E402
    MemorySampler,
    Poller,
    Proxies,
    cpu_seconds,
    create_database,
    drop_database,
    process_tree,
    procfile,
)

# A fault's first word: what goes away (a proxy's name, or the worker).
TARGETS = {"redis": "redis", "pg": "postgres", "rpc": "rpc-a", "worker": "worker"}


def prepare(env: dict[str, str], creators: int, viewers: int) -> tuple[list[str], list[str]]:
    """Migrate; bearer tokens of the creators and of the viewers."""
    manage(env, "migrate", "--noinput", "-v", "0")
    out = manage(
        env,
        "shell",
        "-c",
        "from apps.access.services import api_token_create, user_get_or_create;"
        f"c = [api_token_create(user=user_get_or_create(username=f'creator{{i}}', creator=True)"
        f"[0])[1] for i in range({creators})];"
        f"v = [api_token_create(user=user_get_or_create(username=f'viewer{{i}}')[0])[1]"
        f" for i in range({viewers})];"
        "print('TOKENS', *c, '|', *v)",
    )
    line = [line for line in out.splitlines() if line.startswith("TOKENS ")][-1]
    creator_part, viewer_part = line.split(" ", 1)[1].split("|")
    return creator_part.split(), viewer_part.split()


def timeline_of(args: argparse.Namespace) -> list[Phase]:
    """steady, then each fault and a recovery period after it, then steady: ``--minutes``."""
    faults = []
    for item in filter(None, args.faults.split(",")):
        what, _, seconds = item.partition("=")
        target, action = what.split("-")
        faults.append((TARGETS[target], action, float(seconds or args.outage)))
    rest = max(0.0, args.minutes * 60 - sum(seconds for _, _, seconds in faults))
    recovery = rest * 0.4 / max(1, len(faults))
    plan: list[Phase] = [("steady", rest * 0.3, None)]
    for label, action, seconds in faults:
        plan.append((f"{label} {action}", seconds, (label, action)))
        plan.append((f"after {label} {action}", recovery, None))
    plan.append(("steady again", rest * 0.3, None))
    return plan


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="load before the drain")
    parser.add_argument("--outage", type=float, default=20, help="seconds each fault lasts")
    parser.add_argument(
        "--faults",
        default="redis-down,pg-down,worker-kill,rpc-down=60",
        help="comma-separated, in order: redis-down, pg-down, redis-pause, pg-pause, "
        "rpc-down, rpc-pause, worker-kill; '=S' sets that fault's seconds",
    )
    parser.add_argument(
        "--wallets", type=int, default=20, help="wallets that sign in (0: no chain, no sign-in)"
    )
    parser.add_argument("--rate", type=float, default=6, help="viewer visits per second")
    parser.add_argument("--in-flight", type=int, default=32, help="viewer visits at once, at most")
    parser.add_argument("--viewers", type=int, default=40, help="viewer bearer tokens")
    parser.add_argument("--creators", type=int, default=2)
    parser.add_argument("--upload-every", type=float, default=12, help="seconds, per creator")
    parser.add_argument("--chunk-kib", type=int, default=256, help="tus PATCH size")
    parser.add_argument("--patch-pause", type=float, default=0.5, help="seconds between PATCHes")
    parser.add_argument(
        "--straddle", type=float, default=2, help="an extra upload starts this long before a fault"
    )
    parser.add_argument("--clip-seconds", type=float, default=8)
    parser.add_argument("--clip-size", default="640x360")
    parser.add_argument("--request-timeout", type=float, default=30)
    parser.add_argument("--client-patience", type=float, default=600, help="tus client, seconds")
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--recovery-goal", type=float, default=30, help="seconds after up()")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--keep", action="store_true", help="keep logs and media")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    random.seed(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="sg-soak-"))
    (folder / "uploads").mkdir()
    (folder / "prometheus").mkdir()
    database = create_database()
    direct_dsn = f"postgresql://root@127.0.0.1:5432/{database}"
    processes: dict[str, object] = {}
    proxies = None
    passed = False
    keys = wallet_keys(args.wallets)
    try:
        with ExitStack() as services:
            redis_port = services.enter_context(redis_server(folder / "redis.log"))
            upstreams = {"redis": redis_port, "postgres": 5432}
            rpc: dict[str, str] = {}
            if keys:
                node = services.enter_context(hardhat_node(folder / "hardhat.log"))
                upstreams["rpc-a"] = upstreams["rpc-b"] = int(node.rsplit(":", 1)[1])
            proxies = Proxies(upstreams)
            if keys:
                providers = [f"http://127.0.0.1:{proxies.ports[n]}" for n in ("rpc-a", "rpc-b")]
                rpc = {
                    "urls": json.dumps({CHAIN: providers}),
                    "collection": collection_for(node, keys),
                }
            port = free_port()
            stack_env = embedded_env(
                folder / "var",
                DATABASE_URL=f"postgres://root@127.0.0.1:{proxies.ports['postgres']}/{database}",
                MEDIA_ENCRYPTION="0",  # segments through the token path, as measured before
                REDIS_URL=f"redis://127.0.0.1:{proxies.ports['redis']}/0",
                DJANGO_DEBUG="0",
                LOG_LEVEL="INFO",
                LOG_FORMAT="json",  # the report reads the logs
                STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
                PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"),
                PATH=f"{BIN}:{os.environ.get('PATH', '')}",
                # The Procfile's variables: two web processes, as compose runs them.
                WEB_PORT=str(port),
                WEB_CONCURRENCY=str(args.web_workers),
                WORKER_CONCURRENCY=str(args.worker_concurrency),
                CHAIN_RPC_URLS=rpc.get("urls", "{}"),
                # Every wallet signs in from this one address: the per-address sign-in limit
                # (60/min) would answer most of them 429.
                SIGNIN_RATE="100000/min",
                # A wallet's yes is remembered 300 s by default: the whole run. Kept 2 s, most
                # gated playback grants ask the chain, through whichever provider answers.
                GATE_CACHE_POSITIVE_TTL="2",
            )
            direct_env = dict(
                stack_env,
                DATABASE_URL=f"postgres://root@127.0.0.1:5432/{database}",
                REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            )
            creator_tokens, viewer_tokens = prepare(direct_env, args.creators, args.viewers)
            clips = make_clips(folder, args)
            passed = run_stack(
                args,
                folder,
                port,
                stack_env,
                processes,
                proxies,
                direct_dsn,
                clips,
                creator_tokens,
                viewer_tokens,
                keys,
                rpc.get("collection"),
            )
    finally:
        if proxies is not None:
            proxies.close()
        drop_database(database)
        if args.keep:
            print(f"\nlogs and media kept in {folder}")
        elif passed:
            shutil.rmtree(folder, ignore_errors=True)
        else:  # the logs are the evidence; the media would fill /tmp run after run
            for name in ("uploads", "var"):
                shutil.rmtree(folder / name, ignore_errors=True)
            for clip in folder.glob("clip-*.mp4"):
                clip.unlink()
            print(f"\nlogs kept in {folder}")
    return 0 if passed else 1


def make_clips(folder: Path, args: argparse.Namespace) -> list[bytes]:
    from tests.support.media import make_video

    clips = []
    for index, rate in enumerate((24, 25, 30)):
        path = make_video(
            folder / f"clip-{index}.mp4",
            seconds=args.clip_seconds,
            size=args.clip_size,
            rate=rate,
            extra=["-movflags", "+faststart"],
        )
        clips.append(path.read_bytes())
    return clips


def run_stack(
    args, folder, port, env, processes, proxies, dsn, clips, creators, viewers, keys, collection
) -> bool:
    with ExitStack() as stack:

        def start(name: str) -> None:
            log = folder / f"{name}.log"
            processes[name] = stack.enter_context(
                spawned(["bash", "-c", "exec " + procfile(name)], env=env, log=log)
            )

        def act(target: str, action: str) -> None:
            """Start or end a fault: a proxy's, or the worker killed (and a new one started)."""
            if target != "worker":
                proxies.set(target, action)
            elif action == "kill":
                os.killpg(processes["worker"].pid, signal.SIGKILL)
                processes["worker"].wait(10)
                kills.append(time.monotonic())
            else:
                start("worker")

        kills: list[float] = []
        for name in ("web", "worker", "beat"):
            start(name)
        wait_for_port(port, timeout=60, process=processes["web"], log=folder / "web.log")
        wait_for_log("ready.", timeout=60, process=processes["worker"], log=folder / "worker.log")
        trees = {name: process_tree(p.pid) for name, p in processes.items()}
        poller = Poller(dsn)
        poller.start()
        soak = Soak(
            args=args,
            port=port,
            recorder=Recorder(),
            poller=poller,
            creator_tokens=creators,
            viewer_tokens=viewers,
            clips=clips,
            folder=folder,
            rng=random.Random(args.seed),
            wallet_keys=keys,
            act=act,
        )
        soak.seed()
        if collection:
            soak.gated.append(gate_one(port, creators, soak.ready, collection))
        memory = MemorySampler(processes, lambda: soak.recorder.phase)
        memory.start()
        timeline = timeline_of(args)
        print(
            f"soak: {sum(s for _, s, _ in timeline):.0f} s of load then a drain; faults "
            f"{args.faults or 'none'}, {args.outage:g} s each; {args.rate:g} viewer visits/s, "
            f"{args.creators} creators each starting an upload every {args.upload_every:g} s"
        )
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        proxy_cpu_before = cpu_seconds(proxies.process.pid)
        wall_before = time.monotonic()
        asyncio.run(soak.run(timeline, proxies))
        wall = time.monotonic() - wall_before
        evidence: list[Path] = []
        if not soak.settled():  # the drain ran out: look now, before anything else moves
            evidence = forensics.capture(dsn, live_trees(processes), folder, "work unfinished")
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        harness_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
            cpu_after.ru_stime - cpu_before.ru_stime
        )
        proxy_cpu = cpu_seconds(proxies.process.pid) - proxy_cpu_before
        opened = {name: proxies.set(name, "count") for name in proxies.ports}
        rpc_calls = rpc_requests(port)
        poller.stopped.set()
        poller.join(5)
        memory.stopped.set()
        memory.join(5)
        alive = {
            name: {
                "alive": process.poll() is None,
                "before": trees[name],
                "after": process_tree(process.pid) if process.poll() is None else [],
            }
            for name, process in processes.items()
        }
        t0 = soak.phases[0][1]
        with (folder / "requests.jsonl").open("w") as out:  # every request, for a closer look
            for row in soak.recorder.rows:
                out.write(json.dumps({**asdict(row), "started": row.started - t0}) + "\n")
        passed = report.print_report(
            soak=soak,
            dsn=dsn,
            media_root=folder / "var" / "media",
            logs={name: folder / f"{name}.log" for name in processes},
            processes=alive,
            cpu={"harness": harness_cpu, "proxies": proxy_cpu, "wall": wall},
            connections=opened,
            memory=memory.samples,
            gated=soak.gated,
            rpc_calls=rpc_calls,
        )
        if not passed and not evidence:
            evidence = forensics.capture(dsn, live_trees(processes), folder, "a goal missed")
        if evidence:
            print("\n== forensics (captured while the stack still ran)")
            for path in evidence:
                print(f"  {path}")
        return passed


def rpc_requests(port: int) -> list[str]:
    """The stack's JSON-RPC calls by chain, provider and outcome, from its /metrics."""
    import requests

    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    except requests.RequestException as error:
        return [f"/metrics did not answer: {error}"]
    return [line for line in text.splitlines() if line.startswith("streamgate_rpc_requests_total")]


def gate_one(port: int, creators: list[str], ready: list[str], collection: str) -> str:
    """Gate a seeded content by the soak's collection (through the API, as its creator)."""
    import requests

    gate = {"erc721": {"chain": CHAIN, "contract": collection}}
    for content_id in ready:
        for token in creators:
            answer = requests.patch(
                f"http://127.0.0.1:{port}/api/v1/contents/{content_id}/",
                json={"gate": gate},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if answer.status_code == 200:
                return content_id
    raise SystemExit(f"no seeded content could be gated: {answer.status_code} {answer.text}")


def live_trees(processes: dict) -> dict[str, list[int]]:
    """Each running stack process and its children (uvicorn's workers, the prefork children)."""
    return {
        name: process_tree(process.pid)
        for name, process in processes.items()
        if process.poll() is None
    }


if __name__ == "__main__":
    sys.exit(main())
