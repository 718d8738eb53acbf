"""Chunked jobs, the workflow: a long source's chunks run as their own tasks, on any worker.

- ``chunked_start``: the job's task, having probed and planned, records the plan and the chunks
  (the audio, then the video chunks in order) and queues one task per chunk.
- ``chunks_work``: the job's task then runs queued chunks itself until none is left, so one
  worker alone still finishes the job; every other worker takes chunk tasks meanwhile. A chunk
  task whose chunk is already claimed or done does nothing.
- ``chunk_run``: claim a chunk (or take back one whose worker died), encode it with a heartbeat
  (cancelled when the job ends), upload its files, record its segments, then ``chunks_advance``.
- ``chunks_advance``: under the job's row lock, list the chunks done from the first in the
  manifests: while some are to come the content is watchable (``playable_seconds``) with EVENT
  playlists and a dynamic MPD; when all are done, VOD/static and the job is published.
- ``chunks_reap``: the reaper's part: chunks whose worker went silent go back to the queue.

A dead worker costs its chunk: the others' outputs are in storage and their records in the
database. A chunk whose runs died TRANSCODE_MAX_ATTEMPTS times fails the job.
"""

import logging
import shutil
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from fractions import Fraction
from itertools import takewhile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.content.models import Content
from apps.content.realtime import content_broadcast
from apps.content.storage import (
    storage_delete_quietly,
    storage_exists,
    storage_put_file,
    storage_source_location,
)
from apps.transcode import ffmpeg, tasks
from apps.transcode.chunks import (
    audio_tail,
    collect_audio,
    collect_chunk,
    first_segment,
    plan_chunks,
    write_manifests,
)
from apps.transcode.cmaf import BoxError, finish_segment
from apps.transcode.ladder import PlannedRung
from apps.transcode.models import (
    ChunkKind,
    ChunkState,
    JobStage,
    JobState,
    TranscodeChunk,
    TranscodeJob,
)
from apps.transcode.mpd import ManifestError
from apps.transcode.outage import DATABASE_AWAY, reset_connection, wait_out
from apps.transcode.packaging import PackagingError, cache_control_of, content_type_of
from apps.transcode.publishing import publish_outputs
from apps.transcode.runner import Cancelled, Chunked, JobRun, encode_with_watchdog
from apps.transcode.services.encrypting import chunked_encryption_start, chunks_encrypt
from apps.transcode.services.finishing import fail_job, publish_job, renditions_replace
from apps.transcode.services.requesting import time_limits
from apps.transcode.services.workers import this_worker, worker_gone
from streamgate.celery import TRANSIENT, enqueue_on_commit_with
from streamgate.tracing import span

logger = logging.getLogger(__name__)

CHUNK_STOPPED = "The worker encoding this chunk stopped; the chunk was started again."
CHUNK_SILENT = "The worker encoding this chunk stopped answering; it was queued again."
CHUNK_INTERRUPTED = "Interrupted ({reason}); the chunk was queued again."
INCOMPLETE = "Encoding produced incomplete output; it will not be published."
# A queued chunk whose task was sent this long ago and never ran: its message was lost.
RESEND_AFTER = timedelta(minutes=30)


# --- starting ---------------------------------------------------------------------------------


def plan_as_json(plan: ffmpeg.EncodePlan) -> dict:
    return {
        "frame_rate": f"{plan.frame_rate.numerator}/{plan.frame_rate.denominator}",
        "duration": plan.duration,
        "has_audio": plan.has_audio,
        "preset": plan.preset,
        "segment_seconds": plan.segment_seconds,
        "gop_seconds": plan.gop_seconds,
        "audio_bitrate": plan.audio_bitrate,
        "audio_sample_rate": plan.audio_sample_rate,
        "audio_channels": plan.audio_channels,
        "poster_at": plan.poster_at,
        "storyboard": plan.storyboard.__dict__,
        "threads": plan.threads,
        "input_format": plan.input_format,
        "chunk_seconds": settings.TRANSCODE_CHUNK_SECONDS,
    }


def plan_of(
    job: TranscodeJob, *, source: str, output_dir: Path, chunk: TranscodeChunk | None
) -> ffmpeg.EncodePlan:
    """The encode plan a chunk runs with: the job's, for this chunk's range."""
    saved = job.chunk_plan
    span = None
    if chunk is not None and chunk.kind == ChunkKind.VIDEO:
        storyboard = ffmpeg.Storyboard(**saved["storyboard"])
        span = _span(chunk, job=job, storyboard=storyboard)
    return ffmpeg.EncodePlan(
        source=source,
        output_dir=output_dir,
        rungs=[PlannedRung(**rung) for rung in job.ladder],
        frame_rate=Fraction(saved["frame_rate"]),
        duration=saved["duration"],
        has_audio=saved["has_audio"],
        preset=saved["preset"],
        segment_seconds=saved["segment_seconds"],
        gop_seconds=saved["gop_seconds"],
        audio_bitrate=saved["audio_bitrate"],
        audio_sample_rate=saved["audio_sample_rate"],
        audio_channels=saved["audio_channels"],
        poster_at=min(saved["poster_at"], chunk.seconds / 2) if chunk else saved["poster_at"],
        storyboard=ffmpeg.Storyboard(**saved["storyboard"]),
        threads=saved["threads"],
        input_format=saved["input_format"],
        span=span,
    )


def _span(chunk: TranscodeChunk, *, job: TranscodeJob, storyboard) -> ffmpeg.ChunkRange:
    """The chunk's range, as planned (the plan is a pure function of the saved settings)."""
    saved = job.chunk_plan
    spans = plan_chunks(
        duration=saved["duration"],
        frame_rate=Fraction(saved["frame_rate"]),
        chunk_seconds=saved["chunk_seconds"],
        segment_seconds=saved["segment_seconds"],
        storyboard_interval=storyboard.interval,
    )
    return spans[chunk.index]


def chunked_start(job: TranscodeJob, chunked: Chunked) -> None:
    """Record the plan and the chunks of ``job`` and queue a task per chunk (once: a job taken
    back after its worker died keeps the chunks it has)."""
    plan = chunked.plan
    with transaction.atomic():
        locked = TranscodeJob.objects.select_for_update().get(pk=job.pk)
        if locked.chunks.exists():
            return
        now = timezone.now()
        rows = []
        if plan.has_audio:
            rows.append(
                TranscodeChunk(
                    job=job, kind=ChunkKind.AUDIO, index=0, seconds=plan.duration, enqueued_at=now
                )
            )
        for index, span in enumerate(chunked.chunks):
            following = chunked.chunks[index + 1].start_seconds if span.frames else plan.duration
            rows.append(
                TranscodeChunk(
                    job=job,
                    kind=ChunkKind.VIDEO,
                    index=span.index,
                    start_frame=span.start_frame,
                    frames=span.frames,
                    start_seconds=span.start_seconds,
                    seconds=round(max(0.0, following - span.start_seconds), 6),
                    enqueued_at=now,
                )
            )
        TranscodeChunk.objects.bulk_create(rows)
        if settings.MEDIA_ENCRYPTION:  # each publication encrypts what it lists
            chunked_encryption_start(job)
        job.chunk_plan = plan_as_json(plan)
        job.stage = JobStage.ENCODE
        TranscodeJob.objects.filter(pk=job.pk).update(
            chunk_plan=job.chunk_plan, stage=JobStage.ENCODE, heartbeat_at=now
        )
        for chunk in job.chunks.order_by("kind", "index"):
            _send(chunk)
    logger.info(
        "transcode chunked",
        extra={"job_id": str(job.pk), "chunks": len(chunked.chunks), "audio": plan.has_audio},
    )


def _send(chunk: TranscodeChunk) -> None:
    enqueue_on_commit_with(
        tasks.transcode_chunk, (chunk.pk,), options=time_limits(max(chunk.seconds, 60))
    )


def chunks_work(*, job_id: str | uuid.UUID, worker: str, task_id: str = "") -> None:
    """Run the job's chunks that no one runs, one after another, until none is left (the
    audio first, then the video in order: the first chunks make the video watchable)."""
    while True:
        claimable = [
            chunk
            for chunk in TranscodeChunk.objects.filter(
                job_id=uuid.UUID(str(job_id)), job__state=JobState.RUNNING
            ).exclude(state=ChunkState.SUCCEEDED)
            if chunk.state == ChunkState.QUEUED or worker_gone(chunk)
        ]
        if not claimable:
            return
        chunk_run(chunk_id=claimable[0].pk, worker=worker, task_id=task_id)


# --- one chunk --------------------------------------------------------------------------------


class ChunkRun:
    """A running chunk: its heartbeat (which also keeps the job alive) and its progress, which
    goes to the content as the job's (all video chunks, weighted by their length; it never goes
    back, and reaches the encode's end when the last video chunk is done)."""

    def __init__(self, chunk: TranscodeChunk, worker: str) -> None:
        self.chunk, self.job, self.worker = chunk, chunk.job, worker
        self.reporter = JobRun(job=chunk.job, worker=chunk.job.worker, stage=JobStage.ENCODE)
        self.reporter.top_rung = chunk.job.ladder[0]["name"] if chunk.job.ladder else None
        self.beat_lock = threading.Lock()
        self.sent_at = 0.0

    def beat(self, *, force: bool = False) -> None:
        """Cancelled when the chunk is no longer ours or the job no longer runs."""
        with self.beat_lock:
            now = timezone.now()
            mine = TranscodeChunk.objects.filter(
                pk=self.chunk.pk, state=ChunkState.RUNNING, worker=self.worker
            ).update(heartbeat_at=now)
            if not mine or not TranscodeJob.objects.filter(
                pk=self.job.pk, state=JobState.RUNNING
            ).update(heartbeat_at=now):
                raise Cancelled(str(self.job.pk))

    def alive(self) -> None:
        wait_out(lambda: self.beat(force=True), job_id=str(self.job.pk), what="chunk beat")

    def progress(self, percent: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.sent_at < settings.TRANSCODE_PROGRESS_INTERVAL:
            return
        self.sent_at = now
        if self.chunk.kind != ChunkKind.VIDEO:
            return
        try:
            # Forward only: a chunk taken over after its worker died counts what that run
            # reached until this one gets further, so the job's progress never goes back.
            TranscodeChunk.objects.filter(pk=self.chunk.pk).update(
                progress=Greatest(F("progress"), Value(int(percent)))
            )
            self.reporter.progress(chunks_percent(self.job.pk), force=True)
        except DATABASE_AWAY:
            reset_connection()  # progress is advisory: the encode goes on


def chunks_percent(job_id) -> float:
    """How much of the job's video is encoded, 0-100, over all its chunks."""
    totals = TranscodeChunk.objects.filter(job_id=job_id, kind=ChunkKind.VIDEO).aggregate(
        done=Sum(F("seconds") * F("progress")), seconds=Sum("seconds")
    )
    if not totals["seconds"]:
        return 0.0
    return min(100.0, (totals["done"] or 0) / totals["seconds"])


def _claim(chunk_id: int, worker: str, task_id: str) -> TranscodeChunk | None:
    now = timezone.now()
    running = {
        "state": ChunkState.RUNNING,
        "worker": worker,
        "task_id": task_id,
        "started_at": now,
        "heartbeat_at": now,
        "attempts": F("attempts") + 1,
    }
    claimed = TranscodeChunk.objects.filter(
        pk=chunk_id,
        state=ChunkState.QUEUED,
        # Not ``job__state``: an UPDATE filtered through a join becomes "id IN (SELECT … JOIN
        # …)", which PostgreSQL does not evaluate again after waiting for a concurrent claim,
        # so both claims won. The chunk's own columns are checked again; the job's, by id.
        job_id__in=TranscodeJob.objects.filter(state=JobState.RUNNING).values("pk"),
    ).update(**running)
    if not claimed:
        chunk = TranscodeChunk.objects.select_related("job").filter(pk=chunk_id).first()
        if (
            chunk is None
            or chunk.state != ChunkState.RUNNING
            or chunk.job.state != JobState.RUNNING
            or not worker_gone(chunk)
        ):
            return None
        if _too_many_deaths(chunk):
            return None
        # Its worker died mid-chunk: this chunk, and only it, starts again here.
        claimed = TranscodeChunk.objects.filter(
            pk=chunk_id, state=ChunkState.RUNNING, worker=chunk.worker
        ).update(**running, interruption=CHUNK_STOPPED)
        if not claimed:
            return None
        logger.warning(
            "transcode chunk taken over",
            extra={"job_id": str(chunk.job_id), "chunk": chunk.index, "kind": chunk.kind},
        )
    return TranscodeChunk.objects.select_related("job__content").get(pk=chunk_id)


def _too_many_deaths(chunk: TranscodeChunk) -> bool:
    """A chunk whose runs died TRANSCODE_MAX_ATTEMPTS times fails its job (``attempts`` counts
    the runs that an outage did not interrupt: _requeue takes those back)."""
    if chunk.attempts < settings.TRANSCODE_MAX_ATTEMPTS:
        return False
    job = TranscodeJob.objects.get(pk=chunk.job_id)
    fail_job(
        job,
        f"Encoding stopped {chunk.attempts} times on the same part of the video "
        f"({_part(chunk)}); retry later or contact us.",
    )
    return True


def _part(chunk: TranscodeChunk) -> str:
    if chunk.kind == ChunkKind.AUDIO:
        return "the audio"
    start = round(chunk.start_seconds)
    return f"from {start // 60}:{start % 60:02d}"


def chunk_run(
    *, chunk_id: int, worker: str | None = None, task_id: str = ""
) -> TranscodeChunk | None:
    """Run one chunk to its end: recorded and advanced, or its job failed; a transient failure
    puts the chunk back in the queue and propagates (the task retries). None when the chunk is
    gone (its content was deleted, before or while it ran)."""
    worker = worker or this_worker()
    chunk = _claim(chunk_id, worker, task_id)
    if chunk is None:
        logger.info("transcode chunk not ours to run", extra={"chunk_id": chunk_id})
        existing = TranscodeChunk.objects.filter(pk=chunk_id).first()
        if existing is not None and existing.state == ChunkState.SUCCEEDED:
            # A retry of a run that recorded its chunk but could not list it (storage away):
            # listing is idempotent, so try again.
            chunks_advance(job_id=existing.job_id)
        return existing
    job = chunk.job
    workdir = Path(settings.TRANSCODE_WORK_DIR) / str(job.pk) / f"{chunk.kind}-{chunk.index}"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "storyboard").mkdir(parents=True)
    run = ChunkRun(chunk, worker)
    attributes = {
        "streamgate.job_id": str(job.pk),
        "streamgate.stage": "encode",
        "streamgate.chunk": f"{chunk.kind}-{chunk.index}",
        "streamgate.renditions": [rung["name"] for rung in job.ladder or []],
    }
    try:
        with span("transcode.chunk", attributes):
            _encode_chunk(run, workdir)
        chunks_advance(job_id=job.pk)
    except ffmpeg.EncodeFailed as error:
        fail_job(job, str(error), exit_code=error.result.exit_code, stderr=error.result.stderr_tail)
    except (PackagingError, ManifestError, BoxError) as error:
        fail_job(job, INCOMPLETE, stderr=str(error))
    except Cancelled:
        logger.info("transcode chunk cancelled", extra={"job_id": str(job.pk)})
    except TRANSIENT as error:
        logger.warning(
            "transcode chunk interrupted; it goes back to the queue",
            extra={"job_id": str(job.pk), "chunk": chunk.index},
            exc_info=True,
        )
        _requeue(chunk, worker, reason=CHUNK_INTERRUPTED.format(reason=type(error).__name__))
        raise
    except BaseException:
        fail_job(job, "Encoding failed because of an internal error; our staff have been told.")
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TranscodeChunk.objects.filter(pk=chunk_id).first()  # None: its content was deleted


def _encode_chunk(run: ChunkRun, workdir: Path) -> None:
    chunk, job = run.chunk, run.job
    content = job.content
    source = storage_source_location(
        content.source_path, expires=time_limits(chunk.seconds)["time_limit"] + 600
    )
    plan = plan_of(job, source=source, output_dir=workdir, chunk=chunk)
    binary = ffmpeg.ffmpeg_binary(settings.TRANSCODE_FFMPEG)
    if chunk.kind == ChunkKind.AUDIO:
        args = ffmpeg.build_audio_command(plan, binary=binary)
    else:
        args = ffmpeg.build_command(plan, binary=binary)
    result = encode_with_watchdog(run, args, chunk.seconds)
    if result.cancelled:
        raise Cancelled(str(job.pk))
    if not result.succeeded:
        storage_exists(content.source_path)  # a storage outage is retried, not blamed on the file
        raise ffmpeg.EncodeFailed(result)
    saved = job.chunk_plan
    if chunk.kind == ChunkKind.AUDIO:
        record, files = collect_audio(workdir, track_id=str(len(job.ladder)))
    else:
        span = plan.span
        if span is None:  # plan_of gives every video chunk its range
            raise PackagingError(f"video chunk {chunk.index} has no range")
        last = not TranscodeChunk.objects.filter(
            job=job, kind=ChunkKind.VIDEO, index__gt=chunk.index
        ).exists()
        record, files = collect_chunk(
            workdir,
            chunk=span,
            last=last,
            first_number=first_segment(
                span,
                chunk_seconds=saved["chunk_seconds"],
                segment_seconds=saved["segment_seconds"],
            ),
            frame_rate=plan.frame_rate,
            duration=plan.duration,
            storyboard=plan.storyboard,
        )
    publish_outputs(workdir, files, prefix=job.output_prefix, on_file=lambda *_: run.alive())
    finished = wait_out(
        lambda: TranscodeChunk.objects.filter(
            pk=chunk.pk, state=ChunkState.RUNNING, worker=run.worker
        ).update(
            state=ChunkState.SUCCEEDED,
            progress=100,
            record=record,
            finished_at=timezone.now(),
            encode_seconds=round(result.seconds, 3),
        ),
        job_id=str(job.pk),
        what="chunk done",
    )
    if not finished:
        raise Cancelled(str(job.pk))
    run.progress(100.0, force=True)  # FFmpeg's last report may have fallen to the throttle
    logger.info(
        "transcode chunk done",
        extra={"job_id": str(job.pk), "chunk": chunk.index, "kind": chunk.kind},
    )


def _requeue(chunk: TranscodeChunk, worker: str, *, reason: str) -> None:
    """Back to the queue after an outage (storage, database, broker): the run is not counted,
    as a job keeps its attempt number when its task is retried, so that only deaths of the
    chunk's workers count towards TRANSCODE_MAX_ATTEMPTS."""
    try:
        TranscodeChunk.objects.filter(pk=chunk.pk, state=ChunkState.RUNNING, worker=worker).update(
            state=ChunkState.QUEUED,
            worker="",
            enqueued_at=timezone.now(),
            interruption=reason,
            attempts=F("attempts") - 1,
        )
    except DATABASE_AWAY:
        # The reaper finds it silent and queues it again.
        logger.warning("could not requeue the chunk", extra={"chunk_id": chunk.pk}, exc_info=True)


# --- advancing: manifests and publishing ------------------------------------------------------


def chunks_advance(*, job_id) -> None:
    """List the chunks done, from the first, in the job's manifests: early playback while
    chunks are to come, the job published when all are done. Under the job's row lock, so
    concurrent chunk ends write the manifests one after another, each from the database."""
    with transaction.atomic():
        job = (
            TranscodeJob.objects.select_for_update()
            .select_related("content")
            .filter(pk=job_id, state=JobState.RUNNING)
            .first()
        )
        if job is None or not job.chunk_plan:
            return
        chunks = list(job.chunks.order_by("kind", "index"))
        audio = next((c for c in chunks if c.kind == ChunkKind.AUDIO), None)
        video = [c for c in chunks if c.kind == ChunkKind.VIDEO]
        if audio is not None and audio.state != ChunkState.SUCCEEDED:
            return
        done = list(takewhile(lambda c: c.state == ChunkState.SUCCEEDED, video))
        final = len(done) == len(video)
        if not done or (not final and len(done) <= job.chunks_published):
            return
        _advance(job, done=done, audio=audio, final=final)


def _advance(
    job: TranscodeJob, *, done: list[TranscodeChunk], audio: TranscodeChunk | None, final: bool
) -> None:
    saved = job.chunk_plan
    now = timezone.now()
    started = job.started_at or now
    with tempfile.TemporaryDirectory(prefix="sg-manifests-") as name:
        folder = Path(name)
        audio_record = audio.record if audio is not None else None
        if final and audio_record is not None:
            video_segments = sum(len(c.record["tracks"]["0"]["segments"]) for c in done)
            audio_record = _settle_audio(job, audio_record, video_segments, folder)
        written = write_manifests(
            folder,
            records=[chunk.record for chunk in done],
            audio=audio_record,
            rungs=[PlannedRung(**rung) for rung in job.ladder],
            frame_rate=Fraction(saved["frame_rate"]),
            audio_channels=saved["audio_channels"],
            storyboard=ffmpeg.Storyboard(**saved["storyboard"]),
            segment_seconds=saved["segment_seconds"],
            final=final,
            # Every listed segment is available at once: the clock starts a whole video early.
            available_since=started - timedelta(seconds=saved["duration"]),
            now=now,
        )
        # Encrypted copies of what the manifests list go public before the manifests name them.
        chunks_encrypt(job, folder, final=final)
        publish_outputs(folder, written.files, prefix=job.output_prefix, on_file=lambda *_: None)
    if final:
        work = sum(chunk.encode_seconds or 0 for chunk in done)
        publish_job(
            job,
            renditions=written.renditions,
            duration=saved["duration"],
            realtime_factor=round(saved["duration"] / work, 3) if work else None,
        )
        return
    content = job.content
    TranscodeJob.objects.filter(pk=job.pk).update(
        chunks_published=len(done),
        playable_seconds=written.seconds,
        playable_at=job.playable_at or now,
    )
    renditions_replace(content, job, written.renditions)
    Content.objects.filter(pk=content.pk).update(
        published_job=job,
        playable_seconds=written.seconds,
        poster=job.output_prefix + ffmpeg.POSTER,
    )
    transaction.on_commit(
        lambda: content_broadcast(
            content_id=content.pk,
            message={"type": "playable", "seconds": round(written.seconds, 3)},
        )
    )
    logger.info(
        "transcode chunks published",
        extra={"job_id": str(job.pk), "chunks": len(done), "seconds": written.seconds},
    )


def _settle_audio(job: TranscodeJob, record: dict, video_segments: int, folder: Path) -> dict:
    """End the audio with the video (mpd.settle_tails' rule): the segments past the video's
    count are merged into the audio's last, in storage. That last segment was never listed
    (it plays with the last chunk's video), so rewriting it changes nothing a player saw."""
    last, tails = audio_tail(record, video_segments=video_segments)
    if not tails:
        return record
    names = [record["segments"][last][0], *tails]
    for name in names:
        with default_storage.open(job.output_prefix + name, "rb") as source:
            (folder / name).write_bytes(source.read())
    finish_segment(folder / names[0], tails=tuple(folder / name for name in tails))
    merged = folder / names[0]
    size = merged.stat().st_size
    storage_put_file(
        str(merged),
        job.output_prefix + names[0],
        content_type=content_type_of(names[0]),
        cache_control=cache_control_of(names[0]),
    )
    merged.unlink()
    for name in tails:
        storage_delete_quietly(job.output_prefix + name)
    segments = record["segments"]
    end = segments[-1][1] + segments[-1][2]
    first = segments[last]
    kept = [*segments[:last], [first[0], first[1], end - first[1], size]]
    return {**record, "segments": kept}


# --- the reaper's part ------------------------------------------------------------------------


def chunks_reap(*, stale_before) -> dict[str, int]:
    """Chunks whose worker went silent go back to the queue (or fail their job after
    TRANSCODE_MAX_ATTEMPTS runs); chunks whose task never ran are sent again; a chunked job
    whose chunks are all done but not yet listed is advanced."""
    counts = {"chunks_requeued": 0, "chunks_resent": 0}
    silent = TranscodeChunk.objects.filter(
        state=ChunkState.RUNNING, heartbeat_at__lt=stale_before, job__state=JobState.RUNNING
    )
    for chunk in silent:
        if _too_many_deaths(chunk):
            continue
        if TranscodeChunk.objects.filter(
            pk=chunk.pk,
            state=ChunkState.RUNNING,
            worker=chunk.worker,
            heartbeat_at__lt=stale_before,
            job__state=JobState.RUNNING,  # not a job that another of its chunks just failed
        ).update(
            state=ChunkState.QUEUED,
            worker="",
            enqueued_at=timezone.now(),
            interruption=CHUNK_SILENT,
        ):
            _send(chunk)
            counts["chunks_requeued"] += 1
    now = timezone.now()
    forgotten = TranscodeChunk.objects.filter(
        state=ChunkState.QUEUED, enqueued_at__lt=now - RESEND_AFTER, job__state=JobState.RUNNING
    )
    for chunk in forgotten:
        if TranscodeChunk.objects.filter(pk=chunk.pk, state=ChunkState.QUEUED).update(
            enqueued_at=now
        ):
            _send(chunk)
            counts["chunks_resent"] += 1
    for job in TranscodeJob.objects.filter(
        state=JobState.RUNNING, heartbeat_at__lt=stale_before
    ).exclude(chunk_plan={}):
        try:
            chunks_advance(job_id=job.pk)
        except (PackagingError, ManifestError, BoxError) as error:
            # As chunk_run would have said, had its worker lived to list the chunk; and the
            # reaper goes on with the other jobs rather than failing on this one every minute.
            fail_job(job, INCOMPLETE, stderr=str(error))
    return counts


def transcode_chunk_give_up(*, chunk_id: int, message: str) -> None:
    """A chunk whose task ran out of retries (storage kept failing) fails its job."""
    chunk = TranscodeChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is not None and chunk.job.state == JobState.RUNNING:
        fail_job(chunk.job, message)
