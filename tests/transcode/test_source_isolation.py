"""A stored source that names other resources (a playlist, a manifest, a list) is refused by the
transcode job and by a retry without FFmpeg opening anything it names, locally and on S3, and the
encode command cannot be made to open one either."""

import json
import time
from fractions import Fraction
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.content.models import Content, ContentStatus
from apps.transcode import ffmpeg
from apps.transcode.ladder import PlannedRung
from apps.transcode.models import JobState
from apps.transcode.services import transcode_request, transcode_run
from apps.transcode.tasks import transcode_job
from tests.factories import ContentFactory
from tests.support.hostile_media import (
    HOSTILE_CASES,
    NEUTRAL_ERROR,
    hls_playlist,
    hostile_upload,
)
from tests.support.media import make_video
from tests.support.tripwires import OpenWatch, TcpListener

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("isolation") / "clip.mp4", seconds=1).read_bytes()


@pytest.fixture
def other_content(media_root, clip_bytes) -> Path:
    """Another creator's stored source, on local disk, which no upload may read."""
    content = ContentFactory()
    stored = default_storage.save(f"sources/{content.id}/clip.mp4", ContentFile(clip_bytes))
    return media_root / stored


@pytest.fixture
def listener():
    listening = TcpListener()
    yield listening
    listening.close()


@pytest.fixture
def watch(other_content):
    watching = OpenWatch(other_content.parent)
    yield watching
    watching.close()


def hostile_content(name: str, data: bytes, *, status: str) -> Content:
    """A content whose stored source is the crafted file (as finalisation once attached it)."""
    content = ContentFactory(status=status)
    content.source_path = default_storage.save(f"sources/{content.id}/{name}", ContentFile(data))
    content.save(update_fields=["source_path"])
    return content


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_the_transcode_job_opens_nothing_a_source_names(
    case, tmp_path, listener, watch, other_content
):
    name, data = hostile_upload(case, port=listener.port, victim=other_content, workdir=tmp_path)
    content = hostile_content(name, data, status=ContentStatus.QUEUED)
    job = transcode_run(job_id=str(transcode_request(content=content, enqueue=False).id))
    content.refresh_from_db()
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []
    assert (job.state, job.error, job.command) == (JobState.FAILED, NEUTRAL_ERROR, "")
    assert (content.status, content.error) == (ContentStatus.FAILED, NEUTRAL_ERROR)


@pytest.mark.parametrize("case", ["hls-open-port", "hls-other-content", "hls-missing-file"])
def test_retry_opens_nothing_and_answers_the_same(
    case, tmp_path, listener, watch, other_content, client_for, django_capture_on_commit_callbacks
):
    """``POST …/retry/`` must not be a way to ask the same question again and again: the one
    encode it allows opens nothing and fails as the first did, for good (a file we cannot use:
    a second retry is refused before anything runs)."""
    name, data = hostile_upload(case, port=listener.port, victim=other_content, workdir=tmp_path)
    content = hostile_content(name, data, status=ContentStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(content.owner).post(f"/api/v1/contents/{content.id}/retry/")
    assert response.status_code == 202, response.content
    (sent,) = [c for c in callbacks if getattr(c, "task", None) is transcode_job]
    state = transcode_job.run(*json.loads(json.dumps(sent.args)))
    content.refresh_from_db()
    assert (state, content.status, content.error) == (
        JobState.FAILED,
        ContentStatus.FAILED,
        NEUTRAL_ERROR,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = client_for(content.owner).post(f"/api/v1/contents/{content.id}/retry/")
    assert again.status_code == 409, again.content
    assert again.json()["reason"] == "not_retryable"
    assert not [c for c in callbacks if getattr(c, "task", None) is transcode_job]
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []


@pytest.mark.parametrize("case", ["hls-open-port", "dash-open-port", "concat-open-port"])
def test_on_s3_the_job_probes_the_presigned_url_and_nothing_it_names(
    case, tmp_path, listener, s3_storage
):
    name, data = hostile_upload(
        case, port=listener.port, victim=tmp_path / "none" / "clip.mp4", workdir=tmp_path
    )
    content = hostile_content(name, data, status=ContentStatus.QUEUED)
    job = transcode_run(job_id=str(transcode_request(content=content, enqueue=False).id))
    content.refresh_from_db()
    assert listener.connections == 0, listener.requests
    assert (job.state, content.error) == (JobState.FAILED, NEUTRAL_ERROR)


def test_on_s3_an_ordinary_video_still_encodes_from_the_presigned_url(clip_bytes, s3_storage):
    content = hostile_content("clip.mp4", clip_bytes, status=ContentStatus.QUEUED)
    job = transcode_run(job_id=str(transcode_request(content=content, enqueue=False).id))
    content.refresh_from_db()
    assert (job.state, content.status) == (JobState.SUCCEEDED, ContentStatus.READY), content.error
    assert "-format_whitelist" in job.command
    assert "-protocol_whitelist http,https,tcp,tls" in job.command
    assert "X-Amz-Signature" not in job.command


@pytest.mark.parametrize("forced", [None, "hls", "concat"], ids=["guessed", "hls", "concat"])
@pytest.mark.parametrize("target", ["other-content", "open-port"])
def test_the_encode_cannot_be_made_to_open_what_a_playlist_names(
    forced, target, tmp_path, listener, watch, other_content
):
    """Even if a probe were fooled (or a plan carried no format), FFmpeg itself refuses to
    open any demuxer outside the video whitelist."""
    segment = (
        f"file://{other_content}"
        if target == "other-content"
        else (f"http://127.0.0.1:{listener.port}/segment.mp4")
    )
    name, data = hls_playlist(segment)
    source = tmp_path / name
    source.write_bytes(data)
    plan = ffmpeg.EncodePlan(
        source=str(source),
        input_format=forced,
        output_dir=tmp_path / "out",
        rungs=[PlannedRung("240p", 320, 240, 300_000, 320_000, 450_000)],
        frame_rate=Fraction(25),
        duration=1.0,
        has_audio=False,
        preset="ultrafast",
        segment_seconds=2,
        gop_seconds=1,
        audio_bitrate=64_000,
        audio_sample_rate=48_000,
        audio_channels=2,
        poster_at=0.1,
        storyboard=ffmpeg.Storyboard(interval=1, width=80, height=60, columns=2, rows=2),
    )
    (tmp_path / "out" / "storyboard").mkdir(parents=True)
    started = time.monotonic()
    result = ffmpeg.run(
        ffmpeg.build_command(plan, binary=ffmpeg.ffmpeg_binary()),
        on_report=lambda block: None,
        should_stop=lambda: False,
    )
    assert time.monotonic() - started < 60
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []
    assert result.exit_code != 0
    assert not (tmp_path / "out" / ffmpeg.MANIFEST).exists()


@pytest.mark.parametrize("forced", ["hls", "mov,mp4,m4a,3gp,3g2,mj2"], ids=["hls", "mp4"])
@pytest.mark.parametrize("target", ["other-content", "open-port"])
def test_a_poster_frame_cannot_be_made_to_open_what_a_playlist_names(
    forced, target, tmp_path, listener, watch, other_content
):
    """Taking a poster frame reads the source as the encode does: the probed demuxer forced
    and the whitelists on, so a playlist passed off as a video opens nothing it names."""
    segment = (
        f"file://{other_content}"
        if target == "other-content"
        else f"http://127.0.0.1:{listener.port}/segment.mp4"
    )
    name, data = hls_playlist(segment)
    source = tmp_path / name
    source.write_bytes(data)
    with pytest.raises(ffmpeg.FrameFailed):
        ffmpeg.grab_frame(
            str(source),
            tmp_path / "poster.jpg",
            at=0.1,
            width=320,
            height=180,
            binary=ffmpeg.ffmpeg_binary(),
            input_format=forced,
        )
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []
    assert not (tmp_path / "poster.jpg").exists()


@pytest.mark.parametrize("case", ["hls-open-port", "hls-other-content", "concat-open-port"])
def test_a_poster_frame_of_a_hostile_source_is_refused_through_the_api(
    case, tmp_path, listener, watch, other_content, client_for
):
    """Through the API: a ready content whose source is a playlist (as if it had passed
    the probe) gets a 400 and FFmpeg opens nothing."""
    name, data = hostile_upload(case, port=listener.port, victim=other_content, workdir=tmp_path)
    content = hostile_content(name, data, status=ContentStatus.READY)
    Content.objects.filter(pk=content.pk).update(duration=10.0)
    response = client_for(content.owner).post(
        f"/api/v1/contents/{content.id}/poster/", {"time": 1}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["reason"] == "frame_failed"
    assert listener.connections == 0, listener.requests
    assert watch.opened() == []
