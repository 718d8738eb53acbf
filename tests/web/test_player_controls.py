"""The watch page's player in a real browser: YouTube's keys (Space never scrolls), click to
pause, volume, speed, the rung Auto chose, the seek bar's time, share and shortcuts dialogs,
picture-in-picture; then a phone's width; then the same video gated, seen signed out: its poster
and its gate in words (chain name, contract, explorer). One encode, one page."""

import re

import pytest

from apps.content.services import content_update
from tests.support.media import make_video
from tests.transcode.conftest import encode
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import fast_ladder, off_the_loop  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

NFT = "0x1212121212121212121212121212121212121212"
VIDEO = "document.getElementById('video')"


def video_state(page) -> dict:
    return page.evaluate(
        "(() => { const v = document.getElementById('video'); return {time: v.currentTime,"
        " paused: v.paused, muted: v.muted, volume: v.volume, rate: v.playbackRate,"
        " duration: v.duration, seeking: v.seeking, scroll: window.scrollY}; })()"
    )


def press(page, key: str) -> dict:
    page.keyboard.press(key)
    wait_until(page, f"!{VIDEO}.seeking", 10)
    return video_state(page)


@pytest.mark.usefixtures("media_root", "fast_ladder")
def test_the_player_s_controls_and_a_gated_video_s_explanation(
    live_server,
    settings,
    page,
    tmp_path,
):
    settings.STREAMGATE_PUBLIC_URL = live_server.url
    settings.CHAIN_RPC_URLS = {"eip155:137": "http://127.0.0.1:9/"}  # never asked: signed out
    clip = make_video(tmp_path / "film.mp4", seconds=24, size="854x480")
    content, _ = off_the_loop(encode, clip)
    # A long description, so that the page can scroll and Space could scroll it.
    content = content_update(content=content, title="Field notes", description="Notes.\n" * 80)
    page.set_viewport_size({"width": 1366, "height": 860})
    page.goto(f"{live_server.url}/watch/{content.id}/")
    page.locator("#controls").wait_for(state="visible")
    wait_until(page, f"{VIDEO}.readyState >= 1 && {VIDEO}.duration > 20")
    assert page.evaluate("document.documentElement.scrollHeight > innerHeight")
    assert "{#" not in page.locator("#player").inner_text()  # no template comment shows

    # Space plays and never scrolls; k pauses.
    state = press(page, "Space")
    wait_until(page, f"{VIDEO}.currentTime > 0.3")
    assert not video_state(page)["paused"]
    assert video_state(page)["scroll"] == 0
    page.get_by_role("button", name="Pause").wait_for()
    state = press(page, "k")
    assert state["paused"]
    assert state["scroll"] == 0

    # Seeking: l/j by 10 s, arrows by 5 s, digits to tenths, Home/End.
    start = state["time"]
    assert press(page, "l")["time"] == pytest.approx(start + 10, abs=0.3)
    assert press(page, "j")["time"] == pytest.approx(start, abs=0.3)
    assert press(page, "ArrowRight")["time"] == pytest.approx(start + 5, abs=0.3)
    assert press(page, "ArrowLeft")["time"] == pytest.approx(start, abs=0.3)
    state = press(page, "5")
    assert state["time"] == pytest.approx(state["duration"] / 2, abs=0.3)
    assert press(page, "Home")["time"] == 0
    assert press(page, "End")["time"] > state["duration"] - 0.5
    press(page, "Home")

    # Volume: m mutes and unmutes, arrows step by 5 %; the slider follows.
    assert press(page, "m")["muted"] is True
    page.get_by_role("button", name="Unmute").wait_for()
    assert press(page, "m")["muted"] is False
    assert press(page, "ArrowDown")["volume"] == pytest.approx(0.95)
    wait_until(page, "document.getElementById('volume').value === '0.95'")  # the slider follows
    assert press(page, "ArrowUp")["volume"] == pytest.approx(1)
    page.locator("#volume").fill("0.4")
    assert video_state(page)["volume"] == pytest.approx(0.4)

    # Speed from the menu and from > ; keys typed in a menu stay the menu's.
    page.get_by_label("Playback speed").select_option("1.5")
    assert video_state(page)["rate"] == 1.5
    page.locator("body").focus()
    assert press(page, ">")["rate"] == 1.75
    page.get_by_label("Playback speed").focus()
    paused = video_state(page)["paused"]
    page.keyboard.press("k")
    assert video_state(page)["paused"] == paused

    # A click on the picture plays; another pauses.
    page.locator("#video").click()
    wait_until(page, f"!{VIDEO}.paused")
    page.locator("#video").click()
    wait_until(page, f"{VIDEO}.paused")

    # The quality menu says which rung Auto chose.
    quality = page.get_by_test_id("quality")
    wait_until(page, "document.getElementById('quality').options[0].text.startsWith('Auto (')")
    assert re.fullmatch(r"Auto \((480|360)p\)", quality.locator("option").first.text_content())

    # Hovering the seek bar shows the time there (and the storyboard picture).
    seek = page.locator("#seek").bounding_box()
    page.mouse.move(seek["x"] + seek["width"] * 0.5, seek["y"] + seek["height"] / 2)
    page.locator("#preview-time").wait_for(state="visible")
    assert page.locator("#preview-time").text_content() in ("0:11", "0:12")
    assert "storyboard/sprite-" in page.locator("#preview").evaluate("e => e.style.backgroundImage")
    screenshot(page, "player-controls")
    page.mouse.move(5, 5)

    # Share: the link and a responsive embed snippet, in a dialog.
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share")
    dialog.wait_for()
    watch_url = f"{live_server.url}/watch/{content.id}/"
    assert page.get_by_test_id("share-link").input_value() == watch_url
    embed = page.get_by_test_id("share-embed").input_value()
    assert f'<iframe src="{watch_url}?embed=1"' in embed
    assert "aspect-ratio:16/9" in embed
    assert "width:100%" in embed
    assert 'title="Field notes"' in embed
    screenshot(page, "player-share")
    page.get_by_label("Start at").check()  # the video stands at 0 s after Home: no ?t=
    assert page.get_by_test_id("share-link").input_value() == watch_url
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    page.keyboard.press("l")
    page.get_by_role("button", name="Share").click()
    assert page.get_by_test_id("share-link").input_value() == f"{watch_url}?t=10"
    assert "?embed=1&amp;t=10" in page.get_by_test_id("share-embed").input_value()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    # "?" shows the shortcuts; picture-in-picture is offered where the browser has it.
    page.keyboard.press("?")
    page.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
    page.keyboard.press("Escape")
    supported = page.evaluate("document.pictureInPictureEnabled === true")
    assert page.get_by_role("button", name="Picture in picture").is_visible() == supported

    # A phone: nothing wider than the screen, every control reachable and big enough to tap.
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    controls = page.locator(
        "#controls button:visible, #controls select:visible, #controls input:visible"
    )
    boxes = controls.evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {id: e.id, left: r.left, right: r.right, width: r.width, height: r.height}; })"
    )
    assert len(boxes) >= 10
    for box in boxes:
        assert box["left"] >= 0, box
        assert box["right"] <= 390, box
        assert box["height"] >= 24, box
        assert box["width"] >= 24, box
    screenshot(page, "player-phone")

    # A shared link's start time.
    page.goto(f"{watch_url}?t=10")
    wait_until(page, f"{VIDEO}.currentTime >= 9.9 && !{VIDEO}.seeking")

    # The same video gated, seen signed out: its poster and its gate in words.
    gate = {"erc721": {"chain": "eip155:137", "contract": NFT, "token_id": None}}
    off_the_loop(content_update, content=content, gate=gate)
    page.set_viewport_size({"width": 1366, "height": 860})
    page.goto(f"{live_server.url}/watch/{content.id}/")
    page.get_by_text("Sign in to watch.").wait_for()
    poster = page.get_by_test_id("gate-poster")
    assert poster.is_visible()
    wait_until(page, "document.querySelector('[data-testid=gate-poster]').naturalWidth > 0")
    words = page.get_by_test_id("gate-words").text_content()
    assert f"ERC-721 (NFT) contract {NFT} on Polygon PoS" in words
    explorer = page.get_by_role("link", name="View on polygonscan.com")
    assert explorer.get_attribute("href") == f"https://polygonscan.com/address/{NFT}"
    assert page.get_by_role("link", name="Sign in with your wallet").is_visible()
    assert page.locator("#controls").is_hidden()
    screenshot(page, "watch-gated")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    screenshot(page, "watch-gated-phone")
