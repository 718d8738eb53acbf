"""Choosing a poster (POST /api/v1/contents/<id>/poster/): a frame of the real source taken by
FFmpeg, or an uploaded image checked and re-encoded by Pillow; each refusal is a JSON 4xx. Also:
the progress a real encode reports only moves forward, in plain words; a file that is not a
video fails for good (no retry) and can be replaced through tus with its content_id."""

import asyncio
import io

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from PIL import Image

from apps.content.models import Content, ContentStatus
from apps.content.realtime import content_group
from apps.content.services import content_status_set
from tests.factories import ContentFactory, RenditionFactory
from tests.support.media import make_video
from tests.transcode.conftest import store_source

pytestmark = pytest.mark.django_db


def image_bytes(kind: str, size=(640, 480), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, kind)
    return buffer.getvalue()


def upload(client, content, data: bytes, name="poster.png"):
    return client.post(
        f"/api/v1/contents/{content.id}/poster/",
        {"image": io.BytesIO(data) if data else b""} if data else {},
        format="multipart",
    )


def drain(channel: str) -> list[dict]:
    layer = get_channel_layer()
    found = []
    while True:
        try:
            event = async_to_sync(asyncio.wait_for)(layer.receive(channel), 0.5)
        except TimeoutError:
            return found
        found.append(event["message"])


@pytest.mark.django_db(transaction=True)  # messages leave at each real commit, as in production
def test_a_real_encode_reports_forward_only_progress_then_takes_a_poster_frame(
    tmp_path, client_for
):
    clip = make_video(tmp_path / "clip.mp4", seconds=3, size="640x360")
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    content = ContentFactory()
    async_to_sync(layer.group_add)(content_group(content.id), channel)
    content = store_source(content, clip)
    from apps.transcode.services import transcode_request, transcode_retry, transcode_run

    transcode_run(job_id=str(transcode_request(content=content, enqueue=False).id))
    messages = [m for m in drain(channel) if "overall" in m]
    overall = [m["overall"] for m in messages]
    assert overall == sorted(overall), overall
    assert overall[-1] == 100
    labels = {m["label"] for m in messages}
    assert {"Uploading", "Encoding 360p", "Preparing for streaming", "Ready"} <= labels, labels

    content.refresh_from_db()
    client = client_for(content.owner)
    before = client.get(f"/api/v1/contents/{content.id}/").json()["thumbnail_url"]
    chosen = client.post(f"/api/v1/contents/{content.id}/poster/", {"time": 2.0}, format="json")
    assert chosen.status_code == 200, chosen.json()
    after = chosen.json()["thumbnail_url"]
    assert after != before
    # The cached API shows it at once, and so does the poster URL (the new frame, 640x360).
    assert client.get(f"/api/v1/contents/{content.id}/").json()["thumbnail_url"] == after
    served = Client().get(after.split("testserver")[-1])
    assert served["Cache-Control"] == "public, max-age=31536000, immutable"
    image = Image.open(io.BytesIO(served.getvalue()))
    assert (image.format, image.size) == ("JPEG", (640, 360))
    bare = Client().get(f"/posters/{content.id}.jpg")
    assert bare["Cache-Control"] == "public, no-cache"  # checked each time: new posters show
    again = Client().get(f"/posters/{content.id}.jpg", HTTP_IF_NONE_MATCH=bare["ETag"])
    assert again.status_code == 304
    late = client.post(f"/api/v1/contents/{content.id}/poster/", {"time": 9.5}, format="json")
    assert late.status_code == 400
    assert late.json()["reason"] == "time_out_of_range"

    # A retry is a new attempt: it may start lower again, and says so.
    content_status_set(
        content=content, status=ContentStatus.FAILED, error="x", error_kind="processing"
    )
    channel = async_to_sync(layer.new_channel)()  # a fresh receiver (the last one timed out)
    async_to_sync(layer.group_add)(content_group(content.id), channel)
    transcode_run(job_id=str(transcode_retry(content=content).id))
    again = [m for m in drain(channel) if "overall" in m]
    assert again[0]["overall"] == 30
    assert again[0]["label"] == "Retrying: waiting for an encoder"
    assert [m["overall"] for m in again] == sorted(m["overall"] for m in again)
    assert any(m["label"] == "Retrying: encoding 360p" for m in again)
    assert again[-1]["label"] == "Ready"


def test_an_uploaded_image_becomes_the_poster_at_the_posters_size(
    client_for, media_root, django_capture_on_commit_callbacks
):
    rendition = RenditionFactory(width=1280, height=720)
    content = rendition.content
    client = client_for(content.owner)
    answer = upload(client, content, image_bytes("PNG", size=(800, 800)))
    assert answer.status_code == 200, answer.json()
    stored = Content.objects.get(pk=content.pk).poster
    assert stored.startswith(f"renditions/{content.id}/posters/")
    with Image.open(media_root / stored) as poster:
        assert (poster.format, poster.size) == ("JPEG", (1280, 720))
    # A second one replaces it, and the first file goes.
    with django_capture_on_commit_callbacks(execute=True):
        again = upload(client, content, image_bytes("WEBP", colour=(0, 90, 0)))
    assert again.status_code == 200
    assert again.json()["thumbnail_url"] != answer.json()["thumbnail_url"]
    assert not (media_root / stored).exists()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (image_bytes("GIF"), "image_type"),
        (b"\x89PNG\r\n\x1a\n not really", "image_invalid"),
        (b"\xff" * (5 * 1024 * 1024 + 1), "image_too_large"),
    ],
)
def test_images_that_cannot_be_posters_are_refused(client_for, payload, reason):
    content = RenditionFactory().content
    answer = upload(client_for(content.owner), content, payload)
    assert answer.status_code == 400
    assert answer.json()["reason"] == reason
    assert Content.objects.get(pk=content.pk).poster == ""


def test_poster_refusals(client_for, viewer):
    content = RenditionFactory().content
    client = client_for(content.owner)
    url = f"/api/v1/contents/{content.id}/poster/"
    neither = client.post(url, {}, format="json")
    assert neither.status_code == 400
    both = client.post(
        url, {"time": 1, "image": io.BytesIO(image_bytes("PNG"))}, format="multipart"
    )
    assert both.status_code == 400
    assert client_for(viewer).post(url, {"time": 1}, format="json").status_code == 403
    assert Client().post(url, {"time": 1}, content_type="application/json").status_code in (
        401,
        403,
    )
    draft = ContentFactory(owner=content.owner, status=ContentStatus.PROCESSING)
    busy = client.post(f"/api/v1/contents/{draft.id}/poster/", {"time": 1}, format="json")
    assert busy.status_code == 409
    assert busy.json()["reason"] == "not_ready"
    missing = client.post(f"/api/v1/contents/{content.id}/poster/", {"time": 0}, format="json")
    assert missing.status_code in (400, 409)  # no duration / no source: refused, never a 500


def test_a_file_that_is_not_a_video_fails_for_good_and_can_be_replaced(tmp_path, client_for):
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"these are my notes, not a video\n" * 100)
    content = store_source(ContentFactory(), text)
    assert content.status == ContentStatus.FAILED
    assert (
        content.error
        == "This file is not a video we can read. Upload an MP4, MOV, MKV or WebM video."
    )
    client = client_for(content.owner)
    body = client.get(f"/api/v1/contents/{content.id}/").json()
    assert (body["retryable"], body["error_kind"]) == (False, "source")
    assert client.post(f"/api/v1/contents/{content.id}/retry/").json()["reason"] == "not_retryable"
    # Replace the file: a tus upload naming the content takes its place, and it is queued.
    content = store_source(content, make_video(tmp_path / "real.mp4", seconds=1, size="320x240"))
    assert (content.status, content.error, content.error_kind) == (ContentStatus.QUEUED, "", "")
    assert content.source_path.endswith("real.mp4")
