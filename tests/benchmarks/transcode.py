"""Transcode speed: the pipeline vs one FFmpeg per rung vs its own command line run by hand.

    python tests/benchmarks/transcode.py [--seconds 30] [--preset veryfast]

On a generated 1080p30 source with the default ladder, in one run:
  (a) the pipeline: transcode_run (probe, one FFmpeg for the whole ladder + poster + storyboard,
      packaging, publishing to storage, the database);
  (b) one FFmpeg process per rung, each decoding the source again (MediaCMS's approach), plus
      one for the poster and storyboard;
  (c) the exact command line (a) ran, run by hand.
Prints the realtime factor (seconds of video per second of work) of each and the time ratios
a/b (goal <= 0.8) and a/c (goal <= 1.05).
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def setup_django(var: Path, preset: str) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="streamgate.settings.local",
        STREAMGATE_VAR_DIR=str(var),
        DJANGO_DEBUG="0",
        TRANSCODE_PRESET=preset,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_source(path: Path, seconds: int) -> None:
    from tests.support.media import make_video

    make_video(path, seconds=seconds, size="1920x1080", rate=30)


def pipeline(source: Path):
    from django.core.files import File
    from django.core.files.storage import default_storage
    from django.db import transaction

    from apps.access.services import user_get_or_create
    from apps.content.services import content_create
    from apps.transcode.services import transcode_request, transcode_run
    from apps.uploads.sources import source_attach, source_inspect

    user, _ = user_get_or_create(username="bench", creator=True)
    content = content_create(owner=user, title="bench")
    stored = f"sources/{content.id}/{source.name}"
    with source.open("rb") as handle:
        default_storage.save(stored, File(handle))
    with transaction.atomic():
        source_attach(content=content, report=source_inspect(stored))
    job = transcode_request(content=content, enqueue=False)
    started = time.perf_counter()
    job = transcode_run(job_id=str(job.id))
    elapsed = time.perf_counter() - started
    if job.state != "succeeded":
        raise SystemExit(f"pipeline failed: {job.error}\n{job.stderr_tail}")
    return elapsed, job


def by_hand(job) -> float:
    """Run the job's recorded command line again, into the same (fresh) folder."""
    args = shlex.split(job.command)
    manifest = next(arg for arg in args if arg.endswith("manifest.mpd"))
    folder = Path(manifest).parent
    (folder / "storyboard").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def per_rung(job, source: Path, work: Path) -> float:
    """One FFmpeg per rung (each decoding the source), then one for poster and storyboard."""
    from django.conf import settings

    from apps.transcode.ffmpeg import ffmpeg_binary

    binary = ffmpeg_binary()
    gop = 60
    started = time.perf_counter()
    for index, rung in enumerate(job.ladder):
        out = work / f"rung{index}"
        out.mkdir(parents=True)
        subprocess.run(
            [
                binary,
                "-v",
                "error",
                "-y",
                "-i",
                str(source),
                "-vf",
                f"fps=30,format=yuv420p,scale={rung['width']}:{rung['height']}",
                "-c:v",
                "libx264",
                "-preset",
                settings.TRANSCODE_PRESET,
                "-profile:v",
                "high",
                "-b:v",
                str(rung["bitrate"]),
                "-maxrate",
                str(rung["maxrate"]),
                "-bufsize",
                str(rung["bufsize"]),
                "-g",
                str(gop),
                "-keyint_min",
                str(gop),
                "-sc_threshold",
                "0",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ar",
                "48000",
                "-ac",
                "2",
                "-f",
                "hls",
                "-hls_segment_type",
                "fmp4",
                "-hls_time",
                "4",
                "-hls_playlist_type",
                "vod",
                str(out / "index.m3u8"),
            ],
            check=True,
        )
    (work / "thumbs").mkdir()
    subprocess.run(
        [
            binary,
            "-v",
            "error",
            "-y",
            "-ss",
            "3",
            "-i",
            str(source),
            "-frames:v",
            "1",
            str(work / "thumbs" / "poster.jpg"),
        ],
        check=True,
    )
    subprocess.run(
        [
            binary,
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-vf",
            "fps=1/5,scale=160:90,tile=10x10",
            str(work / "thumbs" / "sprite-%03d.jpg"),
        ],
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup_django(work / "var", args.preset)
        source = work / "source-1080p.mp4"
        make_source(source, args.seconds)
        a, job = pipeline(source)
        c = by_hand(job)
        b = per_rung(job, source, work / "per-rung")
    seconds = args.seconds
    rungs = ", ".join(rung["name"] for rung in job.ladder)
    print(f"transcode benchmark: {seconds} s of 1080p30, rungs {rungs}, preset {args.preset}")
    print(f"  (a) pipeline              {a:6.1f} s  realtime x{seconds / a:.2f}")
    print(f"  (b) one FFmpeg per rung   {b:6.1f} s  realtime x{seconds / b:.2f}")
    print(f"  (c) its command by hand   {c:6.1f} s  realtime x{seconds / c:.2f}")
    print(f"  a/b = {a / b:.2f} (goal <= 0.8)   a/c = {a / c:.2f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
