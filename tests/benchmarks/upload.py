"""Upload throughput: StreamGate's tus server beside the tus project's own Node server and `cp`.

    python tests/benchmarks/upload.py [--quick] [--rounds 3] [--no-s3]

In one run, on the same random files, with the same client (tuspy, one thread per upload) and
timed the same way (from a `sync` to the `sync` after the last byte):

  * StreamGate, started as `make run` starts its web process (the Procfile's uvicorn command
    line, the embedded defaults: SQLite, files under a fresh STREAMGATE_VAR_DIR);
  * the peer: @tus/server + @tus/file-store (tests/benchmarks/tus-peer/, pinned in its
    package-lock.json; `npm ci` installs it there when node_modules is missing), as their README
    sets them up, on Node;
  * `cp` of the same bytes to another folder on the same disk (the disk's own speed).

Cases: 4 x 64 MiB in 5 MiB chunks (4 parallel clients), 4 x 256 MiB in 5 MiB chunks,
4 x 64 MiB in 64 MiB chunks, 1 x 256 MiB in one PATCH; then StreamGate on S3 (a moto server
process) for 4 x 64 MiB in 5 MiB chunks. Each case starts fresh servers (so that their peak RSS,
VmHWM, is the case's) and runs ``--rounds`` rounds in alternating order (cp, StreamGate, peer,
then the reverse); medians are printed, and every round's StreamGate/peer ratio, since the
ratio of one round (both servers on the same machine within seconds) is what counts on a
machine whose disk and CPUs are shared. The CPU time each server process used per PATCH
(user + system, /proc) is printed too: it varies less than the rates do when the machine is
busy. ``--quick``: files a quarter the size, one round.
``TUS_FAST_PATCH=0`` in the environment measures PATCHes through Django's view instead of the
fast path (apps/access/upload_fast.py).

Goals (printed as met / NOT met): StreamGate >= 1.0x the peer for 4 x 64 MiB in 5 MiB chunks and
for one 256 MiB PATCH; >= 0.5x `cp` for 64 MiB chunks; StreamGate's peak RSS flat (within 10%)
from 64 MiB to 256 MiB files.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tusclient import client as tus_client  # noqa: E402

from tests.support.processes import (  # noqa: E402
    embedded_env,
    free_port,
    start_web,
    stop,
    wait_for_port,
)

MIB = 1024 * 1024
PEER = Path(__file__).resolve().parent / "tus-peer"
# The Procfile's web command line (`make run`), minus host and port, which start_web sets.
WEB_FLAGS = ["--timeout-graceful-shutdown", "20"]


@dataclass
class Case:
    name: str
    clients: int
    size_mib: int
    chunk_mib: int
    s3: bool = False
    cp: list[float] = field(default_factory=list)
    streamgate: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # server ms per PATCH, each round

    @property
    def patches(self) -> int:
        return self.clients * -(-self.size_mib // self.chunk_mib)


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    files = []
    for index in range(count):
        path = folder / f"source-{index}.bin"
        with path.open("wb") as out:
            for _ in range(size // MIB):
                out.write(os.urandom(MIB))
        files.append(path)
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(action) -> float:
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    action()
    subprocess.run(["sync"], check=True)  # timed until the bytes are on disk
    return time.perf_counter() - started


def copy_rate(files: list[Path], target: Path) -> float:
    """MB/s of `cp` copying the files to another folder on the same disk, until synced."""
    target.mkdir()
    elapsed = timed(lambda: subprocess.run(["cp", *map(str, files), str(target)], check=True))
    shutil.rmtree(target)
    return sum(f.stat().st_size for f in files) / MIB / elapsed


def upload_rate(endpoint: str, headers: dict[str, str], files: list[Path], chunk: int) -> float:
    """Upload the files concurrently (a thread each) with tuspy; aggregate MB/s."""
    errors: list[BaseException] = []

    def send(path: Path) -> None:
        try:
            client = tus_client.TusClient(endpoint, headers=headers)
            client.uploader(
                file_path=str(path), chunk_size=chunk, metadata={"filename": path.name}
            ).upload()
        except BaseException as error:  # re-raised below
            errors.append(error)

    def run() -> None:
        threads = [threading.Thread(target=send, args=(path,)) for path in files]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    elapsed = timed(run)
    if errors:
        raise errors[0]
    return sum(f.stat().st_size for f in files) / MIB / elapsed


def check_stored(stored: list[Path], files: list[Path], who: str) -> None:
    if sorted(sha256_of(p) for p in stored) != sorted(sha256_of(p) for p in files):
        raise SystemExit(f"{who}: stored bytes differ from the sources")
    for path in stored:
        path.unlink()


def peer_install() -> None:
    if not (PEER / "node_modules" / "@tus" / "server").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True
        )


def start_peer(folder: Path, log: Path) -> tuple[subprocess.Popen, str]:
    folder.mkdir()
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["node", str(PEER / "server.mjs"), str(port), str(folder)],
            cwd=PEER,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, timeout=30, process=process, log=log)
    return process, f"http://127.0.0.1:{port}/files"


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, timeout=30, process=process, log=log)
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")
    return process, endpoint


def streamgate_env(var: Path, moto: str | None) -> tuple[dict[str, str], str]:
    env = embedded_env(var, DJANGO_DEBUG="0", TUS_FAST_PATCH=os.environ.get("TUS_FAST_PATCH", "1"))
    if moto:
        env.update(
            S3_ENDPOINT_URL=moto, S3_BUCKET="bench", S3_ACCESS_KEY="bench", S3_SECRET_KEY="bench"
        )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    token = subprocess.run(
        [*manage, "create_api_token", "bench", "--creator"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return env, token


def run_case(case: Case, work: Path, rounds: int, *, peer: bool) -> None:
    folder = work / case.name.replace(" ", "_").replace("/", "_")
    folder.mkdir()
    files = make_files(folder / "sources", case.clients, case.size_mib * MIB)
    chunk = case.chunk_mib * MIB
    moto = start_moto(folder / "moto.log") if case.s3 else None
    var = folder / "var"
    env, token = streamgate_env(var, moto[1] if moto else None)
    port = free_port()
    server = start_web(env, folder / "web.log", port, WEB_FLAGS)
    node, peer_url = start_peer(folder / "peer", folder / "peer.log") if peer else (None, "")
    sg_url = f"http://127.0.0.1:{port}/api/v1/uploads/"
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        # Warm both servers up (imports, first connections, JIT) with a small upload each.
        warm = make_files(folder / "warm", 1, 6 * MIB)
        upload_rate(sg_url, bearer, warm, 5 * MIB)
        if not case.s3:
            for path in (var / "media" / "incoming").iterdir():
                path.unlink()
        if node is not None:
            upload_rate(peer_url, {}, warm, 5 * MIB)
            for path in (folder / "peer").iterdir():
                path.unlink()
        for index in range(rounds):
            order = ["cp", "streamgate", "peer"]
            for who in order if index % 2 == 0 else reversed(order):
                if who == "cp" and not case.s3:
                    case.cp.append(copy_rate(files, folder / "copy"))
                elif who == "streamgate":
                    used = cpu_seconds(server.pid)
                    case.streamgate.append(upload_rate(sg_url, bearer, files, chunk))
                    used = cpu_seconds(server.pid) - used
                    case.cpu.setdefault("streamgate", []).append(1000 * used / case.patches)
                    if not case.s3:
                        check_stored(
                            sorted((var / "media" / "incoming").iterdir()), files, "StreamGate"
                        )
                elif who == "peer" and node is not None:
                    used = cpu_seconds(node.pid)
                    case.peer.append(upload_rate(peer_url, {}, files, chunk))
                    used = cpu_seconds(node.pid) - used
                    case.cpu.setdefault("peer", []).append(1000 * used / case.patches)
                    stored = [p for p in (folder / "peer").iterdir() if p.suffix != ".json"]
                    check_stored(stored, files, "peer")
        case.rss["streamgate"] = peak_rss_mib(server.pid)
        if node is not None:
            case.rss["peer"] = peak_rss_mib(node.pid)
    finally:
        stop(server)
        if node is not None:
            stop(node)
        if moto is not None:
            stop(moto[0])
    shutil.rmtree(folder)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(cases: list[Case]) -> None:
    print()
    print(
        "| case | StreamGate | @tus/server | `cp` | StreamGate/peer | StreamGate/cp |"
        " peak RSS StreamGate / peer | server CPU per PATCH StreamGate / peer |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in cases:
        sg, peer, cp = median(case.streamgate), median(case.peer), median(case.cp)
        per_round = ", ".join(
            f"{a / b:.2f}" for a, b in zip(case.streamgate, case.peer, strict=False)
        )
        print(
            f"| {case.name} | {sg:.0f} MB/s | {peer:.0f} MB/s | {cp:.0f} MB/s"
            f" | {sg / peer:.2f} ({per_round}) | {sg / cp:.2f}"
            f" | {case.rss.get('streamgate', 0):.0f} / {case.rss.get('peer', 0):.0f} MiB"
            f" | {median(case.cpu.get('streamgate', [])):.1f} /"
            f" {median(case.cpu.get('peer', [])):.1f} ms |"
        )


def goals(cases: list[Case], small: Case, large: Case, single: Case, big_chunks: Case) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    small_ratio = median(small.streamgate) / median(small.peer)
    single_ratio = median(single.streamgate) / median(single.peer)
    cp_ratio = median(big_chunks.streamgate) / median(big_chunks.cp)
    growth = large.rss["streamgate"] / small.rss["streamgate"]
    print()
    print(
        f"goal StreamGate/peer >= 1.0, {small.name}: {small_ratio:.2f} {verdict(small_ratio >= 1)}"
    )
    print(
        f"goal StreamGate/peer >= 1.0, {single.name}: {single_ratio:.2f} "
        f"{verdict(single_ratio >= 1)}"
    )
    print(
        f"goal StreamGate/cp >= 0.5, {big_chunks.name}: {cp_ratio:.2f} {verdict(cp_ratio >= 0.5)}"
    )
    print(
        f"goal peak RSS flat (within 10%), {large.size_mib} vs {small.size_mib} MiB files: "
        f"x{growth:.2f} {verdict(abs(growth - 1) <= 0.10)}"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quarter-size files, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) case")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args()
    scale, rounds = (4, 1) if args.quick else (1, args.rounds)
    small_mib, large_mib = 64 // scale, 256 // scale
    small = Case(f"4 × {small_mib} MiB, 5 MiB chunks", 4, small_mib, 5)
    large = Case(f"4 × {large_mib} MiB, 5 MiB chunks", 4, large_mib, 5)
    big_chunks = Case(f"4 × {small_mib} MiB, {small_mib} MiB chunks", 4, small_mib, small_mib)
    single = Case(f"1 × {large_mib} MiB, one PATCH", 1, large_mib, large_mib)
    s3 = Case(f"S3 (moto): 4 × {small_mib} MiB, 5 MiB chunks", 4, small_mib, 5, s3=True)
    cases = [small, large, big_chunks, single] + ([] if args.no_s3 else [s3])
    if args.only:
        cases = [case for case in cases if args.only in case.name]
    peer_install()
    var_root = ROOT / "var" if (ROOT / "var").exists() else None
    with tempfile.TemporaryDirectory(dir=var_root) as tmp:
        for case in cases:
            run_case(case, Path(tmp), rounds, peer=not case.s3)
            print(
                f"{case.name}: StreamGate {[round(x) for x in case.streamgate]} MB/s, "
                f"peer {[round(x) for x in case.peer]}, cp {[round(x) for x in case.cp]}, "
                f"RSS {case.rss}, CPU ms per PATCH "
                f"{ {who: [round(x, 1) for x in ms] for who, ms in case.cpu.items()} }",
                flush=True,
            )
    report([case for case in cases if not case.s3])
    for case in cases:
        if case.s3:
            print(
                f"\n{case.name}: StreamGate {median(case.streamgate):.0f} MB/s "
                f"(rounds {[round(x) for x in case.streamgate]}), peak RSS "
                f"{case.rss['streamgate']:.0f} MiB"
            )
    if not args.only:
        goals(cases, small, large, single, big_chunks)


if __name__ == "__main__":
    main()
