import base64
import io
import subprocess
from pathlib import Path

import av
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.content.models import Content
from apps.transcode.models import JobState, TranscodeChunk, TranscodeJob
from apps.transcode.runner import Chunked, JobRun, execute
from apps.transcode.services import transcode_request, transcode_run
from apps.transcode.services.chunking import chunked_start
from apps.uploads.finalize import upload_finalize
from apps.uploads.models import UploadState
from apps.uploads.services.creating import upload_create
from apps.uploads.services.receiving import upload_append
from tests.factories import ContentFactory
from tests.support.media import ffmpeg_binary, make_video

# The configured ladder down to 360p (its rungs, not a copy that drifts from them).
TEST_LADDER = [rung for rung in django_settings.TRANSCODE_LADDER if rung["height"] >= 360]
CHUNK = 8  # seconds: two 4-second segments (the ``chunked`` fixture's chunk length)


@pytest.fixture(autouse=True)
def _fast_transcodes(settings, tmp_path):
    """Real encodes, made quick: the fastest preset and a fine-grained storyboard. In the
    clear: these tests read the packaged CMAF itself; encrypting it has its own tests
    (test_encryption.py, test_encryption_chunked.py), which turn MEDIA_ENCRYPTION on."""
    settings.MEDIA_ENCRYPTION = False
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


def store_source(content: Content, path: Path) -> Content:
    """``path`` uploaded as ``content``'s source through the upload services, then finalised
    here by the finalisation its last byte queues (its task is not waited for)."""
    header = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("content_id", str(content.id)), ("filename", path.name))
    )
    length = path.stat().st_size
    upload = upload_create(owner=content.owner, length=length, metadata_header=header)
    with path.open("rb") as handle:
        chunks = iter(lambda: handle.read(1 << 20), b"")
        upload_append(upload=upload, offset=0, body=chunks, content_length=length, checksum=None)
    finalized = upload_finalize(upload_id=str(upload.id))
    assert finalized is not None
    assert finalized.state == UploadState.FINALIZED, finalized.error
    content.refresh_from_db()
    return content


def encode(path: Path, **content_fields) -> tuple[Content, TranscodeJob]:
    """A content with ``path`` as its source, transcoded in this process, as the task does."""
    content = store_source(ContentFactory(**content_fields), path)
    job = transcode_request(content=content, enqueue=False)
    job = transcode_run(job_id=str(job.id))
    content.refresh_from_db()
    return content, job


def output_dir(media_root: Path, content: Content) -> Path:
    return media_root / content.published_job.output_prefix


def first_frames(folder: Path, playlist_name: str) -> list[bool]:
    """For every segment of a media playlist: is its first packet a keyframe? (Packets, not
    decoded frames: a decoder silently skips to the first keyframe it can start from.)"""
    from apps.transcode.packaging import read_media_playlist

    playlist = read_media_playlist(folder / playlist_name)
    init = (folder / playlist.init).read_bytes()
    flags = []
    for segment in playlist.segments:
        data = io.BytesIO(init + (folder / segment.uri).read_bytes())
        with av.open(data) as container:
            packet = next(p for p in container.demux(video=0) if p.size)
            flags.append(bool(packet.is_keyframe))
    return flags


def count_frames(source: str) -> tuple[int, int]:
    """(video frames, audio frames) that the FFmpeg binary decodes from a playlist or an MPD:
    the first video stream (the top rung) and the first audio stream, if any."""
    result = subprocess.run(
        [
            ffmpeg_binary(),
            "-v",
            "error",
            "-i",
            source,
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-f",
            "framemd5",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [
        line.split(",")[0].strip()
        for line in result.stdout.splitlines()
        if line and not line.startswith("#")
    ]
    return rows.count("0"), rows.count("1")


@pytest.fixture(scope="module")
def chunked_clip(tmp_path_factory):
    """21 s: chunks of 8, 8 and 5 seconds (a remainder of a segment or more stays its own)."""
    folder = tmp_path_factory.mktemp("chunked")
    return make_video(folder / "long.mp4", seconds=21, size="854x480", rate=30)


@pytest.fixture
def chunked(settings):
    """Sources over 10 s are encoded in chunks of CHUNK seconds."""
    settings.TRANSCODE_CHUNK_THRESHOLD_SECONDS = 10
    settings.TRANSCODE_CHUNK_SECONDS = CHUNK


def planned(content: Content, tmp_path: Path) -> tuple[TranscodeJob, dict]:
    """A job planned and chunked by its task on another host (claimed, probed, its chunks
    queued), whose chunks the test then runs one by one, as other workers would: (the job,
    its chunks by (kind, index))."""
    job = transcode_request(content=content, enqueue=False)
    now = timezone.now()
    TranscodeJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, worker="elsewhere:1", started_at=now, heartbeat_at=now
    )
    job.refresh_from_db()
    outcome = execute(JobRun(job=job, worker="elsewhere:1"), tmp_path / "job", source_seconds=600)
    assert isinstance(outcome, Chunked)
    chunked_start(job, outcome)
    return job, {(c.kind, c.index): c for c in TranscodeChunk.objects.filter(job=job)}


@pytest.fixture
def own_s3(settings):
    """A moto server of this test's own, so the test can stop and restart it."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.support.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.resource(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="t",
        aws_secret_access_key="t",
        region_name="us-east-1",
    ).create_bucket(Bucket="outage")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "outage",
                "endpoint_url": endpoint,
                "access_key": "t",
                "secret_key": "t",
                "region_name": "us-east-1",
                "addressing_style": "path",
            },
        },
    }
    state = {"server": server, "port": port}
    yield state
    state["server"].stop()
