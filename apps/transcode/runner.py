"""Running one claimed job through its stages: probe, encode, package, upload.

The job beats a heart in the database (a conditional UPDATE that also proves the job is still
ours: a missed beat means it was cancelled, deleted or taken over) from a watchdog thread, so
that even an FFmpeg that stalls on its input is stopped within seconds of a cancellation.
Progress goes to the content's websocket group, throttled. A database outage does not stop the
encode: the watchdog keeps beating on new connections, progress is skipped, and the stage
writes wait for the database (apps/transcode/outage.py). A worker told to stop (SIGTERM) stops
the encode within a quarter of a second (apps/transcode/stopping.py).
"""

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from apps.content.models import ContentStatus
from apps.content.progress import overall_percent, phase_label
from apps.content.realtime import content_broadcast
from apps.content.services import content_progress_set, content_status_set
from apps.content.storage import storage_exists, storage_source_location
from apps.transcode import ffmpeg
from apps.transcode.chunks import plan_chunks
from apps.transcode.ladder import (
    UnusableSource,
    check_complete,
    check_source,
    output_frame_rate,
    plan_ladder,
    rungs_from_settings,
)
from apps.transcode.models import JobStage, JobState, TranscodeJob
from apps.transcode.outage import DATABASE_AWAY, reset_connection, wait_out
from apps.transcode.packaging import Package, package
from apps.transcode.probe import MediaInfo, NotMedia, probe, require_video
from apps.transcode.publishing import publish_outputs
from apps.transcode.services.encrypting import Encrypted, clear_media, package_encrypt
from apps.transcode.stopping import WorkerStopping, stopping
from streamgate.tracing import span

logger = logging.getLogger(__name__)

# How the stages share the processing bar (start, end): the ``progress`` field, as before. The
# bar across all phases, ``overall``, is apps/content/progress.py's.
STAGE_SPAN = {
    JobStage.PROBE: (0, 2),
    JobStage.ENCODE: (2, 90),
    JobStage.PACKAGE: (90, 92),
    JobStage.PUBLISH: (92, 100),
}
# How often the encode's watchdog looks for a stop of the worker (SIGTERM) between heartbeats.
STOP_POLL_SECONDS = 0.25
# After a progress write found the database away, the next ones wait this long (each failed try
# can block for the connection pool's timeout, on the thread that reads FFmpeg's output).
PROGRESS_PAUSE_SECONDS = 5.0


class Cancelled(Exception):
    """The job was cancelled, deleted or taken over while it ran."""


@dataclass
class JobRun:
    """A running job: its heart, its stage clock and its progress reports."""

    job: TranscodeJob
    worker: str
    stage: str = JobStage.PROBE
    stage_started: float = 0.0
    beat_at: float = 0.0
    sent_at: float = 0.0
    beat_lock: threading.Lock = field(default_factory=threading.Lock)
    # During a database outage: when it was first noticed (monotonic), and until when progress
    # writes are skipped.
    away_since: float | None = None
    progress_paused_until: float = 0.0
    # The highest overall progress sent: messages never go below it within this attempt.
    overall_sent: int = 0
    # The tallest rung, once planned, which names the encode phase ("Encoding 720p").
    top_rung: str | None = None
    # The planned renditions' names, once planned (the encode's trace span names them).
    renditions: list[str] = field(default_factory=list)
    # The current stage's trace span (streamgate/tracing.py), ended with the stage; ``execute``
    # holds it open so that a stage that raises ends its span with the error.
    stage_span: ExitStack = field(default_factory=ExitStack)

    def enter(self, stage: str) -> None:
        self.finish_stage()
        self.stage, self.stage_started = stage, time.monotonic()
        attributes = {"streamgate.job_id": str(self.job.pk), "streamgate.stage": stage}
        if self.renditions:
            attributes["streamgate.renditions"] = self.renditions
        self.stage_span.enter_context(span(f"transcode.{stage}", attributes))
        self.alive(force=True, stage=stage, stage_seconds=self.job.stage_seconds)
        self.progress(0.0, force=True)

    def finish_stage(self) -> None:
        if self.stage_started:
            self.job.stage_seconds[self.stage] = round(time.monotonic() - self.stage_started, 3)
        self.stage_span.close()

    def alive(self, *, force: bool = False, **fields) -> None:
        """Beat the heart, waiting out a database outage; Cancelled when the job is no longer
        ours to run."""
        wait_out(lambda: self.beat(force=force, **fields), job_id=str(self.job.pk), what="beat")

    def beat(self, *, force: bool = False, **fields) -> None:
        """One beat; Cancelled when the job is no longer ours. A database error propagates; the
        first beat after an outage records on the job how long the job waited for it."""
        with self.beat_lock:
            now = time.monotonic()
            if not force and now - self.beat_at < settings.TRANSCODE_HEARTBEAT_SECONDS:
                return
            if self.away_since is not None:
                fields["interruption"] = (
                    f"The database was unavailable for about {round(now - self.away_since)} s;"
                    " the job waited for it and went on."
                )
            try:
                beating = TranscodeJob.objects.filter(
                    pk=self.job.pk, state=JobState.RUNNING, worker=self.worker
                ).update(heartbeat_at=timezone.now(), **fields)
            except DATABASE_AWAY:
                self.database_away()
                raise
            self.away_since = None
            if not beating:
                raise Cancelled(str(self.job.pk))
            self.beat_at = now

    def database_away(self) -> None:
        """Note that a write found the database away (the first time of an outage counts)."""
        if self.away_since is None:
            self.away_since = time.monotonic()

    def progress(self, percent: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.sent_at < settings.TRANSCODE_PROGRESS_INTERVAL:
            return
        self.sent_at = now
        start, end = STAGE_SPAN[self.stage]
        overall = max(self.overall_sent, overall_percent(self.stage, percent))
        self.overall_sent = overall
        if now >= self.progress_paused_until:
            try:
                content_progress_set(
                    content_id=self.job.content_id,
                    progress=int(start + (end - start) * percent / 100),
                    overall=overall,
                )
            except DATABASE_AWAY as error:
                # Progress is advisory: the encode goes on, and so do the websocket messages.
                self.database_away()
                self.progress_paused_until = now + PROGRESS_PAUSE_SECONDS
                reset_connection()
                logger.warning(
                    "progress not saved; the database is unavailable",
                    extra={"job_id": str(self.job.pk), "error": str(error)[:200]},
                )
        content_broadcast(
            content_id=self.job.content_id,
            message={
                "type": "transcode",
                "stage": self.stage,
                "percent": round(percent, 1),
                "overall": overall,
                "label": phase_label(self.stage, rung=self.top_rung, retrying=self.job.attempt > 1),
                "attempt": self.job.attempt,
            },
        )


@dataclass(frozen=True)
class Outcome:
    packaged: Package
    duration: float
    realtime_factor: float | None
    encrypted: Encrypted | None = None


@dataclass(frozen=True)
class Chunked:
    """A source long enough to be encoded in chunks: the plan, and its chunks."""

    plan: ffmpeg.EncodePlan
    chunks: list[ffmpeg.ChunkRange]


def chunk_ranges(plan: ffmpeg.EncodePlan) -> list[ffmpeg.ChunkRange]:
    """The chunks of a planned job, or none when it is short enough for one run (or chunking
    is off: TRANSCODE_CHUNK_THRESHOLD_SECONDS = 0)."""
    threshold = settings.TRANSCODE_CHUNK_THRESHOLD_SECONDS
    if not threshold or plan.duration <= threshold:
        return []
    chunks = plan_chunks(
        duration=plan.duration,
        frame_rate=plan.frame_rate,
        chunk_seconds=settings.TRANSCODE_CHUNK_SECONDS,
        segment_seconds=plan.segment_seconds,
        storyboard_interval=plan.storyboard.interval,
    )
    return chunks if len(chunks) > 1 else []


def execute(run: JobRun, workdir: Path, *, source_seconds: int) -> Outcome | Chunked:
    """Probe, encode, package and upload; the caller publishes. A long source is not encoded
    here: its plan and chunks come back (``Chunked``) for the chunk workers. Raises NotMedia,
    UnusableSource, ffmpeg.EncodeFailed, PackagingError, Cancelled, StorageUnavailable, or
    WorkerStopping when the worker is told to stop before or while it encodes.
    Each stage is a trace span (``transcode.<stage>``, with ``streamgate.job_id``)."""
    with run.stage_span:  # the stage that raises ends its span with the error
        return _stages(run, workdir, source_seconds=source_seconds)


def _stages(run: JobRun, workdir: Path, *, source_seconds: int) -> Outcome | Chunked:
    job = run.job
    content = job.content
    content_status_set(content=content, status=ContentStatus.PROCESSING, progress=0)
    run.enter(JobStage.PROBE)
    source = storage_source_location(content.source_path, expires=source_seconds)
    info = _blame_storage_first(content.source_path, lambda: require_video(probe(source)))
    width, height = info.display_size
    check_source(width=width, height=height, duration=info.duration)
    plan = encode_plan(source, workdir, info)
    rungs = plan.rungs
    args = ffmpeg.build_command(plan, binary=ffmpeg.ffmpeg_binary(settings.TRANSCODE_FFMPEG))
    job.source_info = info.as_json()
    job.ladder = [rung.__dict__ for rung in rungs]
    run.top_rung = rungs[0].name if rungs else None
    run.renditions = [rung.name for rung in rungs]
    job.command = ffmpeg.command_line(args, secret=source)
    run.alive(force=True, source_info=job.source_info, ladder=job.ladder, command=job.command)
    run.progress(100.0, force=True)
    chunks = chunk_ranges(plan)
    if chunks:
        run.finish_stage()
        return Chunked(plan=plan, chunks=chunks)

    if stopping():
        raise WorkerStopping(str(job.pk))
    run.enter(JobStage.ENCODE)
    (workdir / "storyboard").mkdir(parents=True)
    result = encode_with_watchdog(run, args, plan.duration, stops_for_shutdown=True)
    wait_out(
        lambda: TranscodeJob.objects.filter(pk=job.pk).update(
            exit_code=result.exit_code, stderr_tail=result.stderr_tail
        ),
        job_id=str(job.pk),
        what="encode result",
        on_failure=run.database_away,
    )
    if result.cancelled and stopping():
        raise WorkerStopping(str(job.pk))
    if result.cancelled:
        raise Cancelled(str(job.pk))
    if not result.succeeded:
        _blame_storage_first(content.source_path, lambda: _raise(ffmpeg.EncodeFailed(result)))

    run.enter(JobStage.PACKAGE)
    packaged = package(
        workdir,
        rungs=rungs,
        frame_rate=plan.frame_rate,
        has_audio=plan.has_audio,
        audio_channels=plan.audio_channels,
        duration=plan.duration,
        storyboard=plan.storyboard,
    )
    expected = info.video_duration or info.duration
    _blame_storage_first(
        content.source_path, lambda: check_complete(expected=expected, encoded=packaged.duration)
    )
    run.progress(100.0, force=True)

    run.enter(JobStage.PUBLISH)
    files = packaged.files
    encrypted = None
    if settings.MEDIA_ENCRYPTION:
        # Encrypted copies go public; the clear media are never uploaded (apps/transcode/
        # encryption.py), only the manifests, poster and storyboard the token path still serves.
        encrypted = package_encrypt(workdir, job)
        clear = set(clear_media(workdir))
        files = [name for name in files if name not in clear]
    publish_outputs(
        workdir,
        files,
        prefix=job.output_prefix,
        on_file=lambda done, total: (run.alive(), run.progress(100 * done / total)),
    )
    run.finish_stage()
    return Outcome(
        packaged=packaged,
        duration=info.duration,
        realtime_factor=round(plan.duration / result.seconds, 3) if result.seconds else None,
        encrypted=encrypted,
    )


def _raise(error: Exception) -> None:
    raise error


def _blame_storage_first(path: str, attempt):
    """Run ``attempt``; if it finds fault with the source, first make sure the source can still
    be read: a storage outage must be retried, not reported to the creator as a bad file."""
    try:
        return attempt()
    except (NotMedia, UnusableSource, ffmpeg.EncodeFailed):
        storage_exists(path)  # raises StorageUnavailable when storage is the problem
        raise


def encode_with_watchdog(
    run, args: list[str], duration: float, *, stops_for_shutdown: bool = False
) -> ffmpeg.RunResult:
    """Run FFmpeg with a watchdog thread that beats the heart and stops FFmpeg on cancel, and,
    with ``stops_for_shutdown``, when the worker is told to stop (the result is then
    ``cancelled``). ``run`` is a JobRun or a chunk's run: ``beat(force=)``,
    ``progress(percent)``, ``job``."""
    encoder = ffmpeg.Encoder(args).start()
    finished = threading.Event()

    def watch() -> None:
        poll = STOP_POLL_SECONDS if stops_for_shutdown else settings.TRANSCODE_HEARTBEAT_SECONDS
        beat_due = time.monotonic() + settings.TRANSCODE_HEARTBEAT_SECONDS
        try:
            while not finished.wait(poll):
                if stops_for_shutdown and stopping():
                    encoder.stop()
                    return
                if stops_for_shutdown and time.monotonic() < beat_due:
                    continue
                beat_due = time.monotonic() + settings.TRANSCODE_HEARTBEAT_SECONDS
                try:
                    run.beat(force=True)
                except Cancelled:
                    encoder.stop()
                    return
                except DATABASE_AWAY as error:
                    # FFmpeg needs no database: it goes on, and the next beat reconnects.
                    reset_connection()
                    logger.warning(
                        "heartbeat failed; the database is unavailable",
                        extra={"job_id": str(run.job.pk), "error": str(error)[:200]},
                    )
        finally:
            reset_connection()  # this thread's own database connection

    watchdog = threading.Thread(target=watch, name=f"transcode-watchdog-{run.job.pk}", daemon=True)
    watchdog.start()

    def report(block: dict[str, str]) -> None:
        percent = ffmpeg.progress_percent(block, duration)
        if percent is not None:
            run.progress(percent)

    try:
        return encoder.wait(report)
    finally:
        finished.set()
        watchdog.join(timeout=10)


def encode_plan(source: str, workdir: Path, info: MediaInfo) -> ffmpeg.EncodePlan:
    """What FFmpeg is to make of a probed source, from settings: the ladder (capped by what the
    source carries), the output frame rate (the source's peak, capped), audio, poster and
    storyboard. No database, no I/O."""
    audio = settings.TRANSCODE_AUDIO
    board = settings.TRANSCODE_STORYBOARD
    width, height = info.display_size
    aspect = Fraction(width, height)
    rungs = plan_ladder(
        display_width=width,
        display_height=height,
        rungs=rungs_from_settings(settings.TRANSCODE_LADDER),
        crf=settings.TRANSCODE_CRF,
        source_bitrate=info.video_bitrate,
        source_share=Fraction(settings.TRANSCODE_SOURCE_SHARE).limit_denominator(1000),
    )
    return ffmpeg.EncodePlan(
        source=source,
        input_format=info.demuxer,
        output_dir=workdir,
        rungs=rungs,
        frame_rate=output_frame_rate(
            frame_rate=info.output_frame_rate_source, maximum=settings.TRANSCODE_MAX_FPS
        ),
        duration=info.duration,
        has_audio=info.has_audio,
        preset=settings.TRANSCODE_PRESET,
        segment_seconds=settings.TRANSCODE_SEGMENT_SECONDS,
        gop_seconds=settings.TRANSCODE_GOP_SECONDS,
        audio_bitrate=audio["bitrate"],
        audio_sample_rate=audio["sample_rate"],
        audio_channels=audio["channels"],
        poster_at=min(info.duration * 0.1, 5.0),
        storyboard=ffmpeg.Storyboard(
            interval=board["interval"],
            width=board["width"],
            height=max(2, round(board["width"] / aspect / 2) * 2),
            columns=board["columns"],
            rows=board["rows"],
        ),
        threads=settings.TRANSCODE_THREADS,
    )
