"""The boundary to FFmpeg: build the one command that encodes a whole job, run it, and read its
``-progress`` output. Nothing else lives here.

One process decodes the source once; a ``split`` feeds a ``scale`` per rung (square pixels;
libx264 at constant quality under the rung's VBV cap, closed GOPs of ``gop_seconds`` aligned
across rungs, no scene-cut keyframes), one branch writes the poster and one the storyboard
sprite sheets. The DASH muxer writes CMAF fMP4 segments once (``movflags=+cmaf`` for its mp4
submuxer: ``cmfc`` in the init segments' brands, fragment data addressed from their own
``moof``) and an MPD whose SegmentTimeline gives every segment's real duration; packaging.py
writes the HLS playlists from that timeline.
"""

import collections
import ctypes
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import ffmpeg
import imageio_ffmpeg

from apps.transcode.ladder import PlannedRung
from apps.transcode.probe import input_options

STDERR_TAIL_LINES = 60
PR_SET_PDEATHSIG = 1


def ffmpeg_binary(configured: str = "") -> str:
    """The configured binary, else ``ffmpeg`` on PATH, else the one imageio-ffmpeg ships."""
    if configured:
        return configured
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Storyboard:
    interval: float  # seconds between thumbnails
    width: int
    height: int
    columns: int
    rows: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows


@dataclass(frozen=True)
class EncodePlan:
    source: str
    output_dir: Path
    rungs: list[PlannedRung]
    frame_rate: Fraction
    duration: float
    has_audio: bool
    preset: str
    segment_seconds: int
    gop_seconds: int
    audio_bitrate: int
    audio_sample_rate: int
    audio_channels: int
    poster_at: float
    storyboard: Storyboard
    threads: int = 0
    input_format: str | None = None  # the probed demuxer: never let FFmpeg guess (playlists!)
    # A part of a chunked job (apps/transcode/chunks.py): its frames only, video only.
    span: "ChunkRange | None" = None

    @property
    def source_is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.frame_rate * self.gop_seconds))


@dataclass(frozen=True)
class ChunkRange:
    """The frames ``[start_frame, start_frame + frames)`` of the output (``frames`` None: to the
    end), at ``start_seconds`` = start_frame / frame rate. Thumbnails are numbered on from
    ``first_thumbnail`` (1-based, as the whole job numbers them); the poster is taken only by
    the chunk that ``poster`` says holds it."""

    index: int
    start_frame: int
    frames: int | None
    start_seconds: float
    first_thumbnail: int
    thumbnails: int | None
    poster: bool


GLOBAL_ARGS = ("-hide_banner", "-nostats", "-progress", "pipe:1", "-stats_period", "0.5")
MANIFEST = "manifest.mpd"
POSTER = "poster.jpg"
SPRITE_PATTERN = "storyboard/sprite-%03d.jpg"


def build_command(plan: EncodePlan, *, binary: str) -> list[str]:
    """The whole job as one FFmpeg command line (built with ffmpeg-python)."""
    span = plan.span
    inputs = _input_options(plan)
    if span is not None and span.start_frame:
        # Input seeking: the demuxer jumps to the keyframe before, the decoder drops the frames
        # before the chunk, and the chunk's clock starts at 0 there (read only the range).
        inputs["ss"] = f"{span.start_seconds:.6f}"
    source = ffmpeg.input(plan.source, **inputs)
    rate = {"fps": str(plan.frame_rate)}
    if span is not None and span.start_frame:
        rate["start_time"] = 0  # frames on the job's grid from the chunk's first
    video = source["v:0"].filter("fps", **rate)
    if span is not None and span.frames is not None:
        video = video.filter("trim", end_frame=span.frames)
    # 10-bit, 4:2:2, RGB… all leave as 8-bit 4:2:0
    video = video.filter("format", "yuv420p").split()
    branches = [video[index] for index in range(len(plan.rungs) + 2)]
    # Square pixels: the ladder's sizes already share one exact shape (apps/transcode/ladder),
    # so the source's own sample aspect (anamorphic DV, a rounding) is scaled away, not kept.
    scaled = [
        branch.filter("scale", rung.width, rung.height, flags="bicubic").filter("setsar", "1")
        for branch, rung in zip(branches, plan.rungs, strict=False)
    ]
    top = plan.rungs[0]
    poster = (
        branches[-2]
        .filter("trim", start=f"{plan.poster_at:.3f}")
        .filter("setpts", "PTS-STARTPTS")
        .filter("scale", top.width, top.height)
        .filter("setsar", "1")
    )
    board = plan.storyboard
    sprites = (
        branches[-1]
        # eof_action=pass: a clip shorter than half an interval still gets its thumbnail.
        .filter("fps", fps=f"1/{board.interval:g}", eof_action="pass")
        .filter("scale", board.width, board.height)
        .filter("tile", f"{board.columns}x{board.rows}")
    )
    with_audio = plan.has_audio and span is None
    streams = [*scaled, source["a:0"]] if with_audio else scaled
    options: dict[str, str | int] = {
        "c:v": "libx264",
        "preset": plan.preset,
        "profile:v": "high",
        "pix_fmt": "yuv420p",
        "g": plan.gop_frames,
        "keyint_min": plan.gop_frames,
        "sc_threshold": 0,
        "flags": "+cgop",
        "force_key_frames": _key_frames(plan),
        "f": "dash",
        "seg_duration": plan.segment_seconds,
        "use_template": 1,
        "use_timeline": 1,
        "format_options": "movflags=+cmaf",
        "adaptation_sets": "id=0,streams=v id=1,streams=a" if with_audio else "id=0,streams=v",
        "map_metadata": -1,
        "map_chapters": -1,
    }
    for index, rung in enumerate(plan.rungs):
        options[f"crf:v:{index}"] = rung.crf
        options[f"maxrate:v:{index}"] = rung.maxrate
        options[f"bufsize:v:{index}"] = rung.bufsize
    if with_audio:
        options.update(_audio_options(plan))
    if span is not None and span.start_frame:
        # x264 starts with its VBV buffer 90% full: at the head of a whole video that is fine,
        # at a chunk's head mid-video it spent 1.6x a steady GOP's bytes where the rate cap
        # binds (a bump in quality and in the segment's peak bitrate at every join). A nearly
        # empty start brings the first GOP back to a steady one's size (0.97x, measured).
        options["x264-params"] = "vbv-init=0.1"
    if plan.threads:
        options["threads"] = plan.threads
    outputs = [ffmpeg.output(*streams, str(plan.output_dir / MANIFEST), **options)]
    if span is None or span.poster:
        outputs.append(
            ffmpeg.output(poster, str(plan.output_dir / POSTER), vframes=1, update=1, **{"q:v": 3})
        )
    sprite_options: dict[str, str | int] = {"q:v": 4, "start_number": 1}
    if span is not None and span.thumbnails is not None:
        # A chunk's sheets hold its own thumbnails: exactly its share, none of the next one's.
        sprite_options["frames:v"] = math.ceil(span.thumbnails / board.columns / board.rows)
    pattern = SPRITE_PATTERN if span is None else chunk_sprite_pattern(span.index)
    outputs.append(ffmpeg.output(sprites, str(plan.output_dir / pattern), **sprite_options))
    return _compiled(ffmpeg.merge_outputs(*outputs), binary)


def build_audio_command(plan: EncodePlan, *, binary: str) -> list[str]:
    """The audio of a chunked job, whole, in one run (AAC's priming and the overlap of its
    frames make joins audible): an MPD and CMAF segments like the ladder's."""
    source = ffmpeg.input(plan.source, **_input_options(plan))
    options: dict[str, str | int] = {
        **_audio_options(plan),
        "f": "dash",
        "seg_duration": plan.segment_seconds,
        "use_template": 1,
        "use_timeline": 1,
        "format_options": "movflags=+cmaf",
        "adaptation_sets": "id=0,streams=a",
        "map_metadata": -1,
        "map_chapters": -1,
    }
    output = ffmpeg.output(source["a:0"], str(plan.output_dir / MANIFEST), **options)
    return _compiled(output, binary)


def chunk_sprite_pattern(index: int) -> str:
    return f"storyboard/sprite-c{index:05d}-%03d.jpg"


def _key_frames(plan: EncodePlan) -> str:
    """A keyframe every ``gop_seconds``; a chunk counts on the job's clock, from the first GOP
    boundary at or after its start, so its keyframes fall where a whole job's would."""
    gop = plan.gop_seconds
    if plan.span is None or not plan.span.start_frame:
        return f"expr:gte(t,n_forced*{gop})"
    start = plan.span.start_seconds
    first = math.ceil(round(start / gop, 6)) * gop
    return f"expr:gte({start:.6f}+t,{first}+n_forced*{gop})"


def _audio_options(plan: EncodePlan) -> dict[str, str | int]:
    return {
        "c:a": "aac",
        "b:a": plan.audio_bitrate,
        "ar": plan.audio_sample_rate,
        "ac": plan.audio_channels,
    }


def _compiled(stream, binary: str) -> list[str]:
    return stream.global_args(*GLOBAL_ARGS).overwrite_output().compile(cmd=binary)


def _input_options(plan: EncodePlan) -> dict[str, str | int]:
    # The probed demuxer, forced, and the probe's whitelists: even a plan without a format
    # (or with a wrong one) cannot make FFmpeg open a playlist and whatever it names.
    options: dict[str, str | int] = {**input_options(plan.source)}
    if plan.input_format:
        options["f"] = plan.input_format
    if plan.source_is_url:
        # A presigned S3 URL: survive dropped connections, give up on a silent server.
        options.update(
            reconnect=1,
            reconnect_on_network_error=1,
            reconnect_delay_max=10,
            rw_timeout=30_000_000,
        )
    return options


def command_line(args: list[str], *, secret: str | None = None) -> str:
    """``args`` as one shell line, for the job record and for running it by hand; a signed
    source URL loses its query string (the signature) on the way."""
    if secret and "?" in secret:
        args = [
            arg.replace(secret, secret.split("?", 1)[0] + "?<signature removed>") for arg in args
        ]
    return shlex.join(args)


_SIGNED_URL = re.compile(r"(https?://[^\s'\"]+?)\?[^\s'\"]*")


def redact_urls(text: str) -> str:
    """Strip query strings (signatures) from URLs in FFmpeg's log."""
    return _SIGNED_URL.sub(r"\1?<removed>", text)


# --- progress -------------------------------------------------------------------------------


def parse_progress(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Group FFmpeg's ``-progress`` key=value lines into one dict per report."""
    block: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        block[key] = value.strip()
        if key == "progress":
            yield block
            block = {}


def progress_percent(block: dict[str, str], duration: float) -> float | None:
    """How far the encode is, 0-100, from a report's out_time; None when it says nothing."""
    raw = block.get("out_time_us") or block.get("out_time_ms")
    if block.get("progress") == "end":
        return 100.0
    if not raw or raw == "N/A" or duration <= 0:
        return None
    try:
        seconds = int(raw) / 1_000_000
    except ValueError:
        return None
    return max(0.0, min(99.9, 100 * seconds / duration))


# --- running --------------------------------------------------------------------------------


@dataclass
class RunResult:
    exit_code: int
    stderr_tail: str
    cancelled: bool = False
    seconds: float = 0.0
    reports: int = 0
    last_report: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.cancelled


class EncodeFailed(Exception):
    """FFmpeg exited with an error; the message (the last line FFmpeg explained itself with)
    is for the creator, the whole tail for staff."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        reason = _reason(result.stderr_tail).rstrip(".")
        super().__init__(
            "FFmpeg could not encode this video"
            + (f": {reason}." if reason else ".")
            + " The file may be damaged or use a format we cannot decode."
        )


_INTERNAL = re.compile(r"^\[(vost|vist|ost|ist|fc|out|in|sch|dec|enc|aost)#")
_CONTEXT = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_TELLING = (
    "invalid",
    "error while decoding",
    "corrupt",
    "truncat",
    "moov atom",
    "no such file",
    "not found",
    "unsupported",
    "could not find codec",
    "end of file",
)


def _reason(stderr_tail: str) -> str:
    """The line of FFmpeg's log that says what is wrong with the input, in FFmpeg's words but
    without its internals (thread names, addresses); empty when no line says so."""
    for raw in reversed(stderr_tail.splitlines()):
        line = raw.strip()
        if not line or _INTERNAL.match(line):
            continue
        if any(word in line.lower() for word in _TELLING):
            return _CONTEXT.sub("", line)[:300]
    return ""


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the worker that started us dies (even by SIGKILL), so an
    encode never outlives its task and never writes next to the task that replaces it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


class Encoder:
    """One FFmpeg run: ``wait`` reads its progress reports; ``stop`` (from any thread) ends it.

    FFmpeg gets SIGKILL if the worker that started it dies, and its stderr is drained in a
    thread so that a chatty log never blocks it.
    """

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.cancelled = threading.Event()
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Encoder":
        self.started = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - args come from build_command, no shell
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent,
        )
        self._drain = threading.Thread(
            target=lambda: self.tail.extend(self.process.stderr), daemon=True
        )
        self._drain.start()
        return self

    def stop(self) -> None:
        """Cancel: SIGTERM, then SIGKILL if FFmpeg does not leave within five seconds."""
        self.cancelled.set()
        if self.process is not None and self.process.poll() is None:
            _stop(self.process)

    def wait(self, on_report: Callable[[dict[str, str]], None]) -> RunResult:
        result = RunResult(exit_code=-1, stderr_tail="")
        try:
            for block in parse_progress(self.process.stdout):
                result.reports += 1
                result.last_report = block
                on_report(block)
            self.process.wait()
        finally:
            if self.process.poll() is None:  # an exception (a time limit) got us here
                self.stop()
            self._drain.join(timeout=5)
        result.exit_code = self.process.returncode
        result.cancelled = self.cancelled.is_set()
        result.stderr_tail = redact_urls("".join(self.tail))[-8000:]
        result.seconds = time.monotonic() - self.started
        return result


def run(
    args: list[str],
    *,
    on_report: Callable[[dict[str, str]], None],
    should_stop: Callable[[], bool],
) -> RunResult:
    """Run FFmpeg to the end, stopping it as soon as a progress report finds ``should_stop``
    true. (Callers that must check even while FFmpeg is silent use Encoder with a watchdog.)"""
    encoder = Encoder(args).start()

    def report(block: dict[str, str]) -> None:
        on_report(block)
        if should_stop():
            encoder.stop()

    return encoder.wait(report)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sprite_count(*, duration: float, storyboard: Storyboard) -> int:
    """How many thumbnails the storyboard branch produces for ``duration`` seconds."""
    return max(1, math.ceil(duration / storyboard.interval))


def grab_frame(
    source: str,
    output: Path,
    *,
    at: float,
    width: int,
    height: int,
    binary: str,
    input_format: str,
) -> None:
    """Write the frame at ``at`` seconds of ``source`` to ``output`` as a ``width``x``height``
    JPEG (a chosen poster). FrameFailed, with FFmpeg's reason, when none was written. The
    source is confined as the encode's is: ``input_format`` (the probed demuxer) forced, only
    video demuxers and the protocol the source needs (a playlist cannot make it open more)."""
    confine = [
        item
        for name, value in {**input_options(source), "f": input_format}.items()
        for item in (f"-{name}", str(value))
    ]
    args = [
        binary, "-hide_banner", "-nostdin", "-y", "-ss", f"{at:.3f}", *confine, "-i", source,
        "-frames:v", "1", "-vf", f"scale={width}:{height},setsar=1", "-q:v", "3", str(output),
    ]  # fmt: skip
    try:
        done = subprocess.run(args, capture_output=True, timeout=60, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as error:
        raise FrameFailed("FFmpeg took too long to read the frame.") from error
    if done.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
        tail = redact_urls(done.stderr.decode(errors="replace"))[-300:]
        raise FrameFailed(f"FFmpeg could not read a frame there: {tail.strip()}")


class FrameFailed(Exception):
    """No frame could be taken from the source at that time."""


# MPEG-TS copies of CMAF segments (apps/transcode/encryption.py, for players that decrypt
# AES-128 only over TS): timestamps kept, shifted by TS_OFFSET so that no decode time is
# negative (B-frames start before 0; Chromium's HLS refuses "buffers not in DTS sequence").
TS_OFFSET = 10


def remux_to_ts(init: Path, segment: Path, output: Path, *, binary: str) -> None:
    """Write ``segment`` (with its track's ``init``) as an MPEG-TS segment, no re-encode;
    RemuxFailed with FFmpeg's reason."""
    args = [
        binary, "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "mp4", "-i", "pipe:0",
        "-map", "0", "-c", "copy", "-copyts", "-muxdelay", "0", "-muxpreload", "0",
        "-output_ts_offset", str(TS_OFFSET), "-f", "mpegts", str(output),
    ]  # fmt: skip
    data = init.read_bytes() + segment.read_bytes()
    try:
        done = subprocess.run(args, input=data, capture_output=True, timeout=60, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as error:
        raise RemuxFailed(f"FFmpeg took too long to remux {segment.name}.") from error
    if done.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace")[-300:].strip()
        raise RemuxFailed(f"FFmpeg could not remux {segment.name} to MPEG-TS: {tail}")


class RemuxFailed(Exception):
    """A segment could not be copied into MPEG-TS."""
