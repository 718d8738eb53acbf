"""Upload throughput: concurrent tus uploads through a running web server vs. a plain disk copy.

    python tests/benchmarks/upload.py [--size-mib 256] [--clients 4] [--chunk-mib 5]

Starts its own server (embedded settings in a temporary folder, or DATABASE_URL / REDIS_URL /
S3_* when set), uploads ``clients`` files of ``size`` concurrently with tuspy in ``chunk``-sized
PATCHes, and copies the same bytes with ``cp`` on the same disk in the same run (both timed
until `sync` returns; the median of three alternating rounds, as this disk's speed wanders).
Prints the
aggregate MB/s of both, their ratio, and the server's peak RSS for a small and a large run, so
that memory growth with file size shows; then one client sends a whole file in a single PATCH
(tus-js-client's default) to show that a chunk is not held in memory either.
Goal: ratio >= 0.5; peak RSS flat in the file size and in the chunk size.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tusclient import client as tus_client  # noqa: E402

from tests.support.processes import embedded_env, free_port, start_web, stop  # noqa: E402

MIB = 1024 * 1024


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    files = []
    block = os.urandom(MIB)
    for index in range(count):
        path = folder / f"source-{index}.bin"
        with path.open("wb") as out:
            for _ in range(size // MIB):
                out.write(block)
        files.append(path)
    return files


def disk_copy_rate(files: list[Path], target: Path) -> float:
    """MB/s of `cp` copying the files to another folder on the same disk, until synced."""
    target.mkdir()
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["cp", *map(str, files), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    elapsed = time.perf_counter() - started
    total = sum(f.stat().st_size for f in files)
    shutil.rmtree(target)
    return total / MIB / elapsed


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


def upload_all(base: str, token: str, files: list[Path], chunk: int) -> float:
    """Upload the files concurrently; returns aggregate MB/s."""
    errors: list[BaseException] = []

    def send(path: Path) -> None:
        try:
            client = tus_client.TusClient(
                f"{base}/api/v1/uploads/", headers={"Authorization": f"Bearer {token}"}
            )
            client.uploader(
                file_path=str(path), chunk_size=chunk, metadata={"filename": path.name}
            ).upload()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=send, args=(path,)) for path in files]
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    subprocess.run(["sync"], check=True)  # like the cp baseline: timed until the bytes are on disk
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(f.stat().st_size for f in files) / MIB / elapsed


def run(size: int, clients: int, chunk: int, work: Path, rounds: int = 3) -> dict[str, float]:
    """Median of ``rounds`` alternating cp and upload runs: this disk's speed wanders a lot."""
    var = work / f"var-{size}"
    env = embedded_env(var, DJANGO_DEBUG="0")
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "S3_ENDPOINT_URL",
        "S3_BUCKET",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
    ):
        if os.environ.get(name):
            env[name] = os.environ[name]
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    token = subprocess.run(
        [*manage, "create_api_token", f"bench{size}", "--creator"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    sources = work / f"sources-{size}"
    sources.mkdir()
    files = make_files(sources, clients, size)
    port = free_port()
    server = start_web(env, work / f"web-{size}.log", port)
    copies, uploads = [], []
    try:
        for _ in range(rounds):
            copies.append(disk_copy_rate(files, work / f"copy-{size}"))
            uploads.append(upload_all(f"http://127.0.0.1:{port}", token, files, chunk))
            stored = sorted((var / "media" / "incoming").iterdir())
            if {sha256_of(p) for p in stored} != {sha256_of(p) for p in files}:
                raise SystemExit("stored bytes differ from the sources")
            for path in stored:
                path.unlink()
        rss = peak_rss_mib(server.pid)
    finally:
        stop(server)
    shutil.rmtree(sources)
    shutil.rmtree(var)
    return {"upload": statistics.median(uploads), "copy": statistics.median(copies), "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--small-mib", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--chunk-mib", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").exists() else None) as tmp:
        work = Path(tmp)
        small = run(args.small_mib * MIB, args.clients, args.chunk_mib * MIB, work)
        large = run(args.size_mib * MIB, args.clients, args.chunk_mib * MIB, work)
    print(f"upload benchmark: {args.clients} concurrent tus uploads, {args.chunk_mib} MiB chunks")
    for result, size in ((small, args.small_mib), (large, args.size_mib)):
        ratio = result["upload"] / result["copy"]
        print(
            f"  {size:>4} MiB each: tus {result['upload']:7.1f} MB/s"
            f" | cp {result['copy']:7.1f} MB/s | ratio {ratio:.2f}"
            f" | server peak RSS {result['rss']:.0f} MiB"
        )
    growth = large["rss"] / small["rss"]
    print(f"  peak RSS {args.size_mib} MiB vs {args.small_mib} MiB files: x{growth:.2f}")
    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").exists() else None) as tmp:
        whole = run(args.size_mib * MIB, 1, args.size_mib * MIB, Path(tmp))
    print(
        f"  one client, the whole {args.size_mib} MiB file in a single PATCH: "
        f"tus {whole['upload']:.1f} MB/s, server peak RSS {whole['rss']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
