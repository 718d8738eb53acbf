"""Captions in a real browser: an SRT uploaded through the API after encoding shows in the
player's captions menu and its cues become active at their times (hls.js loads the subtitle
rendition the server added to the master playlist; the browser draws the cues); and the
studio editor uploads, refuses and deletes captions on a phone-sized screen."""

import pytest
from rest_framework.test import APIClient

from tests.factories import CreatorFactory
from tests.support.media import make_video
from tests.transcode.conftest import encode
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import fast_ladder, off_the_loop, open_editor  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

SRT = (
    "1\r\n00:00:01,000 --> 00:00:03,000\r\nHello from the captions\r\n\r\n"
    "2\r\n00:00:03,500 --> 00:00:05,500\r\nSecond cue, <i>in italics</i>\r\n"
)
# The cues the showing text track has active now, as text.
ACTIVE_CUES = """() => {
  const video = document.getElementById('video');
  const showing = Array.from(video.textTracks).filter((t) => t.mode === 'showing');
  return showing.flatMap((t) => Array.from(t.activeCues || []).map((c) => c.text));
}"""


def upload_captions(content, data: str, language: str) -> dict:
    client = APIClient()
    client.force_authenticate(content.owner)
    response = client.post(
        f"/api/v1/contents/{content.id}/captions/",
        {"file": _file("film.srt", data), "language": language},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def _file(name: str, data: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data.encode())


@pytest.mark.usefixtures("fast_ladder")
def test_captions_uploaded_as_srt_show_in_the_player(live_server, settings, page, tmp_path):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    clip = make_video(tmp_path / "film.mp4", seconds=7, size="854x480")
    content, job = off_the_loop(encode, clip, owner=off_the_loop(CreatorFactory))
    assert job.state == "succeeded", content.error
    off_the_loop(upload_captions, content, SRT, "en")  # after encoding: no re-encode
    page.set_viewport_size({"width": 1366, "height": 860})

    page.goto(f"{live_server.url}/watch/{content.id}/")
    menu = page.get_by_label("Captions")
    menu.wait_for(state="visible")
    assert menu.locator("option").all_text_contents() == ["Off", "English"]
    assert menu.input_value() == ""  # off until the viewer asks
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 0.3")
    page.evaluate("document.getElementById('video').pause()")
    menu.select_option(label="English")

    page.evaluate("document.getElementById('video').currentTime = 2")
    wait_until(page, f"({ACTIVE_CUES})().includes('Hello from the captions')", 20)
    assert 1 <= page.evaluate("document.getElementById('video').currentTime") < 3
    screenshot(page, "watch-captions")
    page.evaluate("document.getElementById('video').currentTime = 4.5")
    wait_until(page, f"({ACTIVE_CUES})().includes('Second cue, <i>in italics</i>')", 10)
    assert page.evaluate(ACTIVE_CUES) == ["Second cue, <i>in italics</i>"]
    page.evaluate("document.getElementById('video').currentTime = 6.5")
    wait_until(page, f"({ACTIVE_CUES})().length === 0", 10)

    menu.select_option(label="Off")
    page.evaluate("document.getElementById('video').currentTime = 2")
    page.wait_for_timeout(300)
    assert page.evaluate(ACTIVE_CUES) == []
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_the_editor_uploads_refuses_and_deletes_captions_on_a_phone(live_server, page, tmp_path):
    page.set_viewport_size({"width": 390, "height": 844})
    open_editor(live_server, page)
    section = page.locator("#captions")
    section.get_by_text("No captions yet.").wait_for()
    subtitles = tmp_path / "film.srt"
    subtitles.write_text(SRT, encoding="utf-8")

    page.get_by_label("Caption file (.vtt or .srt)").set_input_files(str(subtitles))
    page.get_by_label("Language (BCP 47 tag)").fill("en_US")
    page.get_by_role("button", name="Upload captions").click()
    section.get_by_text(
        "The captions were not added. 'en_US' is not a well-formed BCP 47 language tag"
    ).wait_for()

    page.get_by_label("Language (BCP 47 tag)").fill("pt-br")
    page.get_by_role("button", name="Upload captions").click()
    section.get_by_text("Captions added: Portuguese (Brazil) (pt-BR).").wait_for()
    rows = page.get_by_test_id("caption-list").locator("li")
    assert rows.all_text_contents() == ["pt-BRPortuguese (Brazil)Delete"]
    assert section.get_by_text("No captions yet.").is_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    for name in ("Upload captions", "Delete captions: Portuguese (Brazil) (pt-BR)"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["height"] >= 24, name
        assert box["width"] >= 24, name
    page.get_by_label("Caption file (.vtt or .srt)").scroll_into_view_if_needed()
    screenshot(page, "edit-captions-phone")

    page.get_by_role("button", name="Delete captions: Portuguese (Brazil) (pt-BR)").click()
    section.get_by_text("Captions deleted: Portuguese (Brazil).").wait_for()
    assert rows.count() == 0
    section.get_by_text("No captions yet.").wait_for()
