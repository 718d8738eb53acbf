"""Chunked encoding vs the single job, same run: time to playable and ready, scaling, join quality.

    python tests/benchmarks/chunked.py [--seconds 600] [--chunk-seconds 60] [--preset ultrafast]

Generates a ``--seconds`` 1080p30 source once (FFmpeg's testsrc2 and a 440 Hz sine, x264
ultrafast, about 15.6 Mb/s: a synthetic picture, cheap to decode, that compresses unlike camera
footage, so absolute speeds are not a film's; the ratios are what this measures). Serves the
stack as production runs it: PostgreSQL (a scratch database on 127.0.0.1:5432), a throwaway
redis-server, media on disk, real Celery workers (prefork, concurrency 1, queues uploads,
transcode and default), the default ladder at ``--preset``. Each run has its own workers and
broker (a Redis database) and stores the source of a fresh content through the upload services,
in a child process with the run's settings (``upload_append``'s last byte queues the
finalisation on the run's workers, as a tus PATCH does). Times run from that last byte
(``Upload.completed_at``) to ``TranscodeJob.playable_at`` (when the API's ``playable`` turned
true, in the same transaction) and to ``finished_at`` (ready), on the database's clock.

  (A) the single job (TRANSCODE_CHUNK_THRESHOLD_SECONDS=0), one worker pinned to core 0
      (``taskset -c 0``). A single job is one task and one FFmpeg: given (C)'s two workers it
      takes one and leaves the other idle, so (A) is also its time on (C)'s workers.
  (B) chunked (``--chunk-seconds``; any source longer than one chunk is cut), one worker pinned
      to core 1, side by side with (A): each has a busy neighbour core (shared caches, memory
      bandwidth), as each of (C)'s workers has. ``--one-at-a-time`` runs it after (A), on core 0.
  (C) chunked, two workers pinned to cores 0 and 1: two one-core hosts.
  (W) the single job on one unpinned worker, its FFmpeg threading over both cores: the best the
      single-job pipeline does with this whole machine (``--no-whole-machine`` skips it).

Goals (the issue's), judged against the same workers, as the issue sets them (one-core workers;
a single job cannot use a second worker):
  playable(C) / ready(A) <= 0.2;  ready(C) / ready(B) <= 0.6;
  PSNR at every join within 1 dB of the unchunked encode's on the same frames, either way (a
  join much better than its neighbours is a pulse of sharpness and of bytes every chunk: the
  bytes of the two segments meeting there are printed next to it).
Printed, not judged: playable(C) / ready(W), the strictest reading (the single job given the
same two cores as the chunks, through FFmpeg's threads), and playable(B) / ready(A) (one core
each). Exits 1 when a goal is missed.

Prints each run's times, the chunks of (B) and (C) (worker core, start, wall time, FFmpeg's
time), a model for N one-core hosts from (B)'s chunk times (list scheduling in queue order, and
the closed form T(N) = start + max(audio, ceil(chunks/N) x mean chunk) + publish) next to the
measured 1- and 2-worker times; then, for the top rung, the PSNR against the source (FFmpeg's
psnr filter) of the frames ``--window`` seconds either side of every chunk join, in (C)'s output
and in (A)'s, and of the whole video.

The default preset is ultrafast, not the product's veryfast: with it the defaults should take
about 20 minutes on the idle 2-core development machine, with veryfast about 30 (estimated from
the CPU time of shorter runs on a busy machine; the source and its four stored copies take about
6 GB in a temporary folder, removed at the end). Other work on the machine disturbs the times:
each run prints the load average as it ends.
"""

import argparse
import heapq
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.load import create_database, drop_database  # noqa: E402
from tests.support.processes import celery_worker, embedded_env, manage, redis_server  # noqa: E402

QUEUES = "uploads,transcode,default"
MIB = 1024 * 1024
GOAL_PLAYABLE = 0.2
GOAL_SCALING = 0.6
GOAL_PSNR_DB = 1.0


@dataclass
class Run:
    label: str
    origin: datetime  # the upload's last byte
    ready: float  # seconds from it
    playable: float | None
    job: object
    content: object
    chunks: list = field(default_factory=list)
    cores: dict[str, str] = field(default_factory=dict)  # worker ("host:pid") -> its cores
    load: float = 0.0  # the load average when it ended
    where: str = ""  # its workers


# --- the stack and the runs -------------------------------------------------------------------


def make_source(path: Path, seconds: int) -> Path:
    """testsrc2 1080p30 + a sine, as tests/support/media.make_video makes them (its timeout is
    too short for ten minutes of 1080p)."""
    from tests.support.media import ffmpeg_binary

    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}"]
        + ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        + ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        + ["-c:a", "aac", "-shortest", str(path)],
        check=True,
        timeout=120 + 2 * seconds,
    )
    return path


def setup_django(env: dict[str, str]) -> None:
    """This process reads the database and the media as the stack's own processes do."""
    os.environ.update(env)
    import django

    django.setup()


def upload_source(source: Path, title: str) -> str:
    """A new content whose source is ``source``, stored through the upload services; the
    upload's id once its last byte is stored (which queued its finalisation). Run in a child
    process with the run's environment, so that the task goes to that run's broker."""
    import base64

    from apps.access.services import user_get_or_create
    from apps.content.services import content_create
    from apps.uploads.services.creating import upload_create
    from apps.uploads.services.receiving import upload_append

    user, _ = user_get_or_create(username="bench", creator=True)
    content = content_create(owner=user, title=title)
    header = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("content_id", str(content.id)), ("filename", source.name))
    )
    length = source.stat().st_size
    upload = upload_create(owner=user, length=length, metadata_header=header)
    with source.open("rb") as handle:
        blocks = iter(lambda: handle.read(MIB), b"")
        upload_append(upload=upload, offset=0, body=blocks, content_length=length, checksum=None)
    return str(upload.id)


def cores_of(worker: str) -> str:
    """The cores a live worker process ("host:pid") may run on."""
    pid = worker.rsplit(":", 1)[-1]
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "?"
    found = re.search(r"Cpus_allowed_list:\s*(\S+)", status)
    return found[1] if found else "?"


@dataclass
class Pending:
    """A run under way: its workers are up and its upload has ended."""

    label: str
    upload_id: str
    logs: Path
    where: str


def start_run(
    stack: ExitStack, label: str, env: dict, pins: list[str | None], source: Path, logs: Path
) -> Pending:
    """Start one worker per entry of ``pins`` (a taskset core list, or None: unpinned) on
    ``stack``, then upload the source."""
    for index, cores in enumerate(pins):
        stack.enter_context(
            celery_worker(
                env,
                logs / f"{label}-worker{index}.log",
                queues=QUEUES,
                pool="prefork",
                prefix=["taskset", "-c", cores] if cores else None,
            )
        )
    code = (
        "from pathlib import Path; from tests.benchmarks.chunked import upload_source; "
        f"print('UPLOAD', upload_source(Path({str(source)!r}), 'bench {label}'))"
    )
    upload_id = manage(env, "shell", "-c", code).split("UPLOAD", 1)[1].strip()
    where = (
        f"{len(pins)} worker{'s' * (len(pins) > 1)} on core{'s' * (len(pins) > 1)} "
        + " and ".join(pins)
        if all(pins)
        else "1 worker, unpinned (both cores)"
    )
    return Pending(label, upload_id, logs, where)


def finish_run(pending: Pending, timeout: float) -> Run:
    """Wait until the content is ready (its workers still up); the run's times and records."""
    from apps.content.models import Content, ContentStatus
    from apps.transcode.models import TranscodeChunk, TranscodeJob
    from apps.uploads.models import Upload

    label = pending.label
    upload = Upload.objects.get(pk=pending.upload_id)
    if upload.completed_at is None:
        raise SystemExit(f"({label}) the upload did not complete: {upload.state}")
    deadline = time.monotonic() + timeout
    while True:
        content = Content.objects.get(pk=upload.content_id)
        if content.status in (ContentStatus.READY, ContentStatus.FAILED):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"({label}) not ready after {timeout:.0f} s: {content.status}")
        time.sleep(0.25)
    job = TranscodeJob.objects.filter(content=content).order_by("-attempt").first()
    if content.status == ContentStatus.FAILED or job is None:
        logs = sorted(pending.logs.glob(f"{label}-*.log"))
        tail = "".join(log.read_text()[-2000:] for log in logs)
        stderr = job.stderr_tail if job else ""
        raise SystemExit(f"({label}) failed: {content.error}\n{stderr}\n{tail}")
    chunks = list(TranscodeChunk.objects.filter(job=job).order_by("kind", "index"))
    cores = {w: cores_of(w) for w in {job.worker, *(c.worker for c in chunks)}}
    origin = upload.completed_at
    ready = (job.finished_at - origin).total_seconds()
    playable = None
    if chunks:
        playable = ready if job.playable_at is None else (job.playable_at - origin).total_seconds()
    run = Run(
        label, origin, ready, playable, job, content, chunks, cores, os.getloadavg()[0],
        pending.where,
    )  # fmt: skip
    print(f"  ({label}) ready in {ready:.1f} s (load average {run.load:.1f})", flush=True)
    return run


# --- the model for N hosts ----------------------------------------------------------------------


@dataclass
class Timeline:
    """A chunked run on one worker: how long each task held it, in queue order."""

    start: float  # last byte -> first chunk starts (finalisation, probe, plan, queueing)
    audio: float
    video: list[float]
    publish: float  # last chunk recorded -> ready (final manifests, publishing)


def timeline_of(run: Run) -> Timeline:
    """Each task's hold: from its start to the next task's start on the same worker (its
    encode, upload, and listing in the manifests); the last task's to its end."""
    ordered = sorted(run.chunks, key=lambda c: c.started_at)
    holds = {}
    for chunk, following in zip(ordered, ordered[1:] + [None], strict=True):
        end = following.started_at if following is not None else chunk.finished_at
        holds[(chunk.kind, chunk.index)] = (end - chunk.started_at).total_seconds()
    video = [holds[k] for k in sorted(k for k in holds if k[0] == "video")]
    return Timeline(
        start=(ordered[0].started_at - run.origin).total_seconds(),
        audio=holds.get(("audio", 0), 0.0),
        video=video,
        publish=(run.job.finished_at - ordered[-1].finished_at).total_seconds(),
    )


def scheduled(timeline: Timeline, hosts: int) -> tuple[float, float]:
    """(playable, ready) with ``hosts`` one-core workers taking the queue in order: the audio,
    then the video chunks; each free worker takes the next task."""
    free = [0.0] * hosts
    ends = []
    for hold in [timeline.audio, *timeline.video]:
        begin = heapq.heappop(free)
        ends.append(begin + hold)
        heapq.heappush(free, begin + hold)
    playable = timeline.start + max(ends[0], ends[1])
    return playable, timeline.start + max(ends) + timeline.publish


def closed_form(timeline: Timeline, hosts: int) -> float:
    """start + max(audio, ceil(chunks / N) rounds of the mean chunk) + publish; one host also
    encodes the audio, one after the other."""
    mean = statistics.mean(timeline.video)
    rounds = math.ceil(len(timeline.video) / hosts)
    work = timeline.audio + rounds * mean if hosts == 1 else max(timeline.audio, rounds * mean)
    return timeline.start + work + timeline.publish


# --- quality at the joins -----------------------------------------------------------------------


def rendition_file(folder: Path, playlist_name: str, out: Path) -> Path:
    """A rung as one fragmented MP4: its init segment, then its media segments in order."""
    from apps.transcode.packaging import read_media_playlist

    playlist = read_media_playlist(folder / playlist_name)
    with out.open("wb") as joined:
        joined.write((folder / playlist.init).read_bytes())
        for segment in playlist.segments:
            joined.write((folder / segment.uri).read_bytes())
    return out


def frame_errors(rendition: Path, source: Path, size: tuple[int, int], stats: Path) -> list[float]:
    """Per decoded frame, in order, the mean squared error of ``rendition`` (scaled back to
    ``size``) against ``source`` (FFmpeg's psnr filter, all planes)."""
    from tests.support.media import ffmpeg_binary

    width, height = size
    graph = (
        f"[0:v]scale={width}:{height}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS[d];"
        f"[1:v]format=yuv420p,setpts=PTS-STARTPTS[r];[d][r]psnr=stats_file={stats}:shortest=1"
    )
    subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-nostats", "-v", "error"]
        + ["-i", str(rendition), "-i", str(source), "-an", "-lavfi", graph, "-f", "null", "-"],
        check=True,
    )
    return [float(re.search(r"mse_avg:([\d.]+)", line)[1]) for line in stats.open()]


def psnr(errors: list[float]) -> float:
    """PSNR (8-bit) of the frames' mean squared error, as FFmpeg averages it."""
    mean = statistics.mean(errors)
    return math.inf if mean == 0 else 10 * math.log10(255**2 / mean)


@dataclass
class Join:
    """The top rung around one chunk join (``at`` None: the whole video), in the chunked output
    and in the one-run output: PSNR against the source, the worst frame's, and the bytes of
    the two segments that meet there (chunked / one run)."""

    at: float | None
    chunked: float
    whole: float
    worst_chunked: float | None = None
    worst_whole: float | None = None
    bytes_ratio: float | None = None


def joins(chunked: Run, whole: Run, source: Path, work: Path, window: float) -> list[Join]:
    """Every join of ``chunked``, then the whole video."""
    from django.core.files.storage import default_storage

    from apps.transcode.packaging import read_media_playlist

    size = (chunked.content.width, chunked.content.height)
    folders = {
        name: Path(default_storage.path(run.job.output_prefix))
        for name, run in (("chunked", chunked), ("whole", whole))
    }

    def measure(name: str) -> list[float]:
        joined = rendition_file(folders[name], "media_0.m3u8", work / f"{name}.mp4")
        try:
            return frame_errors(joined, source, size, work / f"{name}-psnr.log")
        finally:
            joined.unlink()

    with ThreadPoolExecutor(max_workers=2) as pool:  # one FFmpeg per core
        errors = dict(zip(folders, pool.map(measure, folders), strict=True))
    if len(errors["chunked"]) != len(errors["whole"]):
        raise SystemExit(f"PSNR: frame counts differ: { {k: len(v) for k, v in errors.items()} }")
    sizes = {
        name: [
            (folder / segment.uri).stat().st_size
            for segment in read_media_playlist(folder / "media_0.m3u8").segments
        ]
        for name, folder in folders.items()
    }
    plan = chunked.job.chunk_plan
    reach = round(window * Fraction(plan["frame_rate"]))
    rows = []
    for chunk in chunked.chunks:
        if chunk.kind != "video" or chunk.index == 0:
            continue
        frames = slice(max(0, chunk.start_frame - reach), chunk.start_frame + reach)
        ours, theirs = errors["chunked"][frames], errors["whole"][frames]
        segment = round(chunk.start_seconds / plan["segment_seconds"])
        pair = slice(segment - 1, segment + 1)
        rows.append(
            Join(
                at=chunk.start_seconds,
                chunked=psnr(ours),
                whole=psnr(theirs),
                worst_chunked=psnr([max(ours)]),
                worst_whole=psnr([max(theirs)]),
                bytes_ratio=sum(sizes["chunked"][pair]) / sum(sizes["whole"][pair]),
            )
        )
    total = sum(sizes["chunked"]) / sum(sizes["whole"])
    rows.append(Join(None, psnr(errors["chunked"]), psnr(errors["whole"]), bytes_ratio=total))
    return rows


# --- the report ---------------------------------------------------------------------------------


def chunk_lines(run: Run) -> list[str]:
    lines = []
    for chunk in sorted(run.chunks, key=lambda c: c.started_at):
        name = "audio" if chunk.kind == "audio" else f"video {chunk.index:>2}"
        begin = (chunk.started_at - run.origin).total_seconds()
        wall = (chunk.finished_at - chunk.started_at).total_seconds()
        lines.append(
            f"    {name:<9} {chunk.seconds:6.1f} s of video  core {run.cores.get(chunk.worker):<4}"
            f" from {begin:7.1f} s  wall {wall:6.1f} s  FFmpeg {chunk.encode_seconds:6.1f} s"
            f"  x{chunk.seconds / chunk.encode_seconds:.2f} realtime"
            + (f"  ({chunk.attempts} runs)" if chunk.attempts > 1 else "")
        )
    return lines


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(args, runs: dict[str, Run], quality: list[Join], source_bytes: int, load) -> list:
    a, b, c, w = runs["A"], runs["B"], runs["C"], runs.get("W")
    rungs = ", ".join(rung["name"] for rung in a.job.ladder)
    print(
        f"chunked benchmark: {args.seconds} s of 1080p30 (testsrc2 + sine, "
        f"{source_bytes * 8 / args.seconds / 1e6:.1f} Mb/s), rungs {rungs}, preset {args.preset}, "
        f"{len([x for x in c.chunks if x.kind == 'video'])} chunks of {args.chunk_seconds} s"
    )
    print(
        f"  load average before the runs {load[0]:.2f} (other work on this 2-core machine; the"
        f" runs add 1 to 2 of their own), after {load[1]:.2f}"
    )
    print("  from the upload's last byte:")
    for run in runs.values():
        if run.chunks:
            kind, then = "chunked", f"  playable {run.playable:6.1f} s"
        else:
            encode = run.job.stage_seconds.get("encode", 0)
            kind, then = "single job", f"  (its FFmpeg {encode:6.1f} s)"
        print(
            f"  ({run.label}) {kind:<10}  {run.where:<31}  ready {run.ready:7.1f} s{then}"
            f"  load average {run.load:.1f}"
        )
    missed = []
    ratio = c.playable / a.ready
    ok = ratio <= GOAL_PLAYABLE
    missed += [] if ok else [f"playable(C)/ready(A) {ratio:.2f}"]
    print(f"  playable(C)/ready(A) = {ratio:.3f} (goal <= {GOAL_PLAYABLE}): {verdict(ok)} the goal")
    print(f"  playable(B)/ready(A) = {b.playable / a.ready:.3f} (one core each)")
    if w is not None:
        print(
            f"  playable(C)/ready(W) = {c.playable / w.ready:.3f} (two cores each: today's FFmpeg"
            " threading over both; not judged)"
        )
    ratio = c.ready / b.ready
    ok = ratio <= GOAL_SCALING
    missed += [] if ok else [f"ready(C)/ready(B) {ratio:.2f}"]
    print(f"  ready(C)/ready(B) = {ratio:.3f} (goal <= {GOAL_SCALING}): {verdict(ok)} the goal")
    print(f"  ready(B)/ready(A) = {b.ready / a.ready:.3f} (chunking's cost on one core)")
    print(f"  ready(C)/ready(A) = {c.ready / a.ready:.3f}", end="")
    print(f"   ready(C)/ready(W) = {c.ready / w.ready:.3f}" if w is not None else "")
    for run in (b, c):
        print(f"  chunks of ({run.label}), in the order they started:")
        print("\n".join(chunk_lines(run)))
    timeline = timeline_of(b)
    print(
        f"  model for N one-core hosts, from (B)'s holds (a task's start to the next one's: "
        f"encode, upload, listing): start {timeline.start:.1f} s, audio {timeline.audio:.1f} s, "
        f"chunks mean {statistics.mean(timeline.video):.1f} s "
        f"(min {min(timeline.video):.1f}, max {max(timeline.video):.1f}), "
        f"publish {timeline.publish:.1f} s"
    )
    measured = {1: b, 2: c}
    tasks = len(timeline.video) + 1  # and the audio: more hosts than tasks wait
    hosts = sorted({count for count in (1, 2, 4, 8, 16) if count < tasks} | {tasks})
    for count in hosts:
        playable, ready = scheduled(timeline, count)
        formula = closed_form(timeline, count)
        line = (
            f"    N={count:<3} ready {ready:7.1f} s (closed form {formula:7.1f} s)"
            f"  playable {playable:6.1f} s  ready/ready(A) {ready / a.ready:.3f}"
        )
        if count in measured:
            run = measured[count]
            line += f"  | measured ready {run.ready:.1f} s, playable {run.playable:.1f} s"
        print(line)
    print(
        f"  top rung, PSNR against the source, frames {args.window:g} s either side of each join,"
        " (C) chunked vs (A) one run:"
    )
    for join in quality:
        if join.at is None:
            print(
                f"    whole video        chunked {join.chunked:6.2f} dB  one run {join.whole:6.2f}"
                f" dB  bytes x{join.bytes_ratio:.3f}"
            )
            continue
        difference = join.chunked - join.whole
        ok = abs(difference) <= GOAL_PSNR_DB
        missed += [] if ok else [f"PSNR at {join.at:.1f} s differs by {difference:+.2f} dB"]
        print(
            f"    join at {join.at:7.2f} s  chunked {join.chunked:6.2f} dB  one run"
            f" {join.whole:6.2f} dB  difference {difference:+.2f} dB (goal within"
            f" {GOAL_PSNR_DB:g}): {verdict(ok)}  worst frame {join.worst_chunked:.2f} /"
            f" {join.worst_whole:.2f} dB  bytes of its two segments x{join.bytes_ratio:.3f}"
        )
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--chunk-seconds", type=int, default=60)
    parser.add_argument("--preset", default="ultrafast", help="x264 preset (product: veryfast)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds either side of a join")
    parser.add_argument(
        "--whole-machine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time (W), the single job on an unpinned worker",
    )
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="run (A) and (B) one after the other on core 0, not side by side",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and media")
    args = parser.parse_args()
    if args.chunk_seconds <= 0 or args.chunk_seconds % 4:
        parser.error("--chunk-seconds must be a multiple of the segment length, 4 s")
    if args.seconds < 2 * args.chunk_seconds:
        parser.error("--seconds must hold at least two chunks")
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("this benchmark needs taskset (util-linux) and two cores")
    load_before = os.getloadavg()[0]
    timeout = max(900, 10 * args.seconds)
    work = Path(tempfile.mkdtemp(prefix="sg-chunkbench-"))
    database = create_database()
    try:
        with redis_server(work / "redis.log") as redis_port:
            redis = f"redis://127.0.0.1:{redis_port}"
            env = embedded_env(
                work / "var",
                DATABASE_URL=f"postgres://root@127.0.0.1:5432/{database}",
                MEDIA_ENCRYPTION="0",  # the clear CMAF is what the joins are measured on
                REDIS_URL=f"{redis}/15",  # this process sends no task
                DJANGO_DEBUG="0",
                TRANSCODE_PRESET=args.preset,
                TRANSCODE_CHUNK_SECONDS=str(args.chunk_seconds),
            )
            manage(env, "migrate", "--noinput", "-v", "0")
            setup_django(env)
            source = make_source(work / "source-1080p.mp4", args.seconds)
            # Each run has its own broker (a Redis database): no task of one run reaches
            # another run's workers, and none is left over for the next.
            single = dict(env, TRANSCODE_CHUNK_THRESHOLD_SECONDS="0")
            chunked = dict(env, TRANSCODE_CHUNK_THRESHOLD_SECONDS=str(args.chunk_seconds))
            plans = {
                "A": (dict(single, REDIS_URL=f"{redis}/0"), ["0"]),
                "B": (dict(chunked, REDIS_URL=f"{redis}/1"), ["0" if args.one_at_a_time else "1"]),
                "C": (dict(chunked, REDIS_URL=f"{redis}/2"), ["0", "1"]),
                "W": (dict(single, REDIS_URL=f"{redis}/3"), [None]),
            }
            groups = [["A"], ["B"]] if args.one_at_a_time else [["A", "B"]]
            groups += [["C"], ["W"]] if args.whole_machine else [["C"]]
            runs = {}
            for group in groups:
                with ExitStack() as workers:
                    pending = [
                        start_run(workers, label, *plans[label], source, work) for label in group
                    ]
                    for started in pending:
                        runs[started.label] = finish_run(started, timeout)
            quality = joins(runs["C"], runs["A"], source, work, args.window)
            missed = report(
                args, runs, quality, source.stat().st_size, (load_before, os.getloadavg()[0])
            )
            from django.db import connections

            connections.close_all()
    finally:
        drop_database(database)
        if args.keep:
            print(f"logs and media kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if missed:
        raise SystemExit(f"goals missed: {'; '.join(missed)}")


if __name__ == "__main__":
    main()
