"""Views in a real browser: a viewer plays an encoded clip on the watch page, leaves it (the
last beacon goes out on pagehide), and the owner's audience page shows one view and a TTFF."""

import re

import pytest
from django.test import Client

from tests.support.media import make_video
from tests.transcode.conftest import TEST_LADDER, encode
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import off_the_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_ladder(settings, tmp_path):
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER[-1:]  # 360p alone
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"


def signed_in_cookie(user, url: str) -> dict:
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}


def test_a_played_clip_is_one_view_with_a_ttff_in_the_studio(
    live_server, settings, page, media_root, fast_ladder, tmp_path
):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    clip = make_video(tmp_path / "clip.mp4", seconds=3, size="640x360")
    content, _ = off_the_loop(encode, clip, title="Counted film")

    page.goto(f"{live_server.url}/watch/{content.id}/")  # an anonymous viewer
    page.locator("#video").wait_for(state="visible")
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 1", 30)
    page.goto(f"{live_server.url}/signin/")  # leaving the page sends the last beacon

    page.context.add_cookies([off_the_loop(signed_in_cookie, content.owner, live_server.url)])
    stats = f"{live_server.url}/studio/{content.id}/stats/"
    page.goto(stats)
    for _ in range(50):  # the beacon left with the page; it may land just after this load
        if page.get_by_test_id("views").text_content() == "1":
            break
        page.wait_for_timeout(200)
        page.goto(stats)
    assert page.get_by_test_id("views").text_content() == "1"
    assert page.get_by_test_id("viewers").text_content() == "1"
    assert re.fullmatch(r"\d+\.\d\d s", page.get_by_test_id("ttff-p50").text_content())
    watched = page.get_by_test_id("watch-time").text_content()
    assert re.fullmatch(r"\d\.\d s", watched), watched
    assert float(watched[:-2]) > 0.3
    chart = page.locator("#audience-chart")
    assert "1 in total" in chart.get_attribute("aria-label")
    assert chart.locator("svg rect.bar").count() == 30
    screenshot(page, "audience")
    page.set_viewport_size({"width": 390, "height": 844})
    wait_until(page, "document.documentElement.scrollWidth <= window.innerWidth", 5)
