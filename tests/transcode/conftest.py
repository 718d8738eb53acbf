import io
import subprocess
from pathlib import Path

import av
import pytest
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from apps.content.models import Content
from apps.transcode.models import TranscodeJob
from apps.transcode.services import transcode_request, transcode_run
from apps.uploads.sources import source_attach, source_inspect
from tests.factories import ContentFactory
from tests.support.media import ffmpeg_binary

TEST_LADDER = [
    {"name": "1080p", "height": 1080, "maxrate": 5_350_000, "bufsize": 7_500_000},
    {"name": "720p", "height": 720, "maxrate": 3_000_000, "bufsize": 4_200_000},
    {"name": "480p", "height": 480, "maxrate": 1_500_000, "bufsize": 2_100_000},
    {"name": "360p", "height": 360, "maxrate": 856_000, "bufsize": 1_200_000},
]


@pytest.fixture(autouse=True)
def _fast_transcodes(settings, tmp_path):
    """Real encodes, made quick: the fastest preset and a fine-grained storyboard."""
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


def store_source(content: Content, path: Path) -> Content:
    """What an upload's finalisation does: store the file, inspect it, attach it."""
    stored = f"sources/{content.id}/{path.name}"
    with path.open("rb") as handle:
        default_storage.save(stored, File(handle))
    report = source_inspect(stored)
    with transaction.atomic():
        source_attach(content=content, report=report)
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
