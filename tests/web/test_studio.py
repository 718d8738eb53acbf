"""The creator's side in a real browser against the embedded stack: two files dropped at once
upload as two rows with their own titles, and each row's bar only moves forward, through a real
upload and encode, to Ready; the studio list at phone width is cards with actions and no
sideways scroll, deletes after a dialog, and the edit page's title follows a save; a file that
is not a video fails without Retry and is replaced from its edit page."""

import base64
import time

from tests.support.media import make_padded_video, make_video
from tests.support.processes import ROOT
from tests.web.conftest import screenshot, wait_until
from tests.web.test_creator import DROP, sign_in
from tests.web.test_creator import stack as stack  # the embedded stack (module scope)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 860}

RECORD_BARS = """() => {
  window.__marker = "no reload";
  window.__bars = {};
  new MutationObserver((records) => {
    for (const record of records) {
      const row = record.target.closest("li");
      if (!row || record.target.dataset.role !== "bar") continue;
      const value = Number(record.target.getAttribute("aria-valuenow"));
      (window.__bars[row.dataset.serial] ||= []).push(value);
    }
  }).observe(document.getElementById("queue"),
    { attributes: true, subtree: true, attributeFilter: ["aria-valuenow"] });
}"""
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_violations(page) -> list[str]:
    """axe-core's WCAG A/AA findings on the page as it is (injected by evaluate: the CSP
    forbids a script tag)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)"
    )
    return found


def row(page, serial: int):
    return page.locator(f"li.queue-item[data-serial='{serial}']")


def status_is(serial: int, status: str) -> str:
    """A page expression: the queue's row ``serial`` has reached ``status``."""
    return f"document.querySelector(\"li[data-serial='{serial}']\")?.dataset.status === '{status}'"


def test_two_files_upload_as_two_rows_whose_bars_only_move_forward(stack, page, tmp_path):
    holiday = make_video(tmp_path / "holiday.mp4", seconds=3, size="640x360")
    party = make_video(tmp_path / "beach_party.mp4", seconds=3, size="320x240")
    sign_in(page, stack)
    page.set_viewport_size(DESKTOP)
    page.goto(f"{stack}/studio/upload/")
    assert page.locator("#file").get_attribute("multiple") is not None
    page.evaluate(RECORD_BARS)
    page.set_input_files("#file", [str(holiday), str(party)])  # two files at once

    first, second = row(page, 1), row(page, 2)
    assert first.get_by_label("Title").input_value() == "holiday"
    assert second.get_by_label("Title").input_value() == "beach party"
    for serial in (1, 2):
        wait_until(page, status_is(serial, "ready"), 120)
    bars = page.evaluate("window.__bars")
    for serial in ("1", "2"):
        values = bars[serial]
        assert values == sorted(values), values  # never backwards
        assert values[-1] == 100
        assert len({value for value in values if 0 < value < 100}) >= 3, values  # it moved
    assert page.evaluate("window.__marker") == "no reload"  # all of it arrived live
    for item in (first, second):
        assert item.locator("[data-role=status]").text_content() == "Ready"
        assert item.get_by_role("link", name="Watch").is_visible()
        assert item.get_by_role("link", name="Edit").is_visible()
    assert page.evaluate(NO_OVERFLOW)
    assert accessibility_violations(page) == []
    screenshot(page, "upload")
    second.get_by_label("Title").fill("beach party")  # a row's title is the video's own
    second.get_by_label("Title").fill("Beach party")
    second.get_by_label("Title").press("Tab")
    second.get_by_text("Title saved.").wait_for()

    # The studio list: a table on a desktop, cards with their actions on a phone.
    page.goto(f"{stack}/studio/")
    assert page.evaluate(NO_OVERFLOW)
    screenshot(page, "studio")
    page.set_viewport_size({"width": 700, "height": 860})  # a tablet, between the two layouts
    assert page.evaluate(NO_OVERFLOW)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
    card = page.locator("tr", has_text="holiday")
    assert card.evaluate("(row) => getComputedStyle(row).display") == "grid"
    assert card.locator("img[data-role=poster]").get_attribute("src").startswith("/posters/")
    for name in ("Watch", "Edit", "Delete"):
        action = card.get_by_role("link" if name != "Delete" else "button", name=name)
        box = action.bounding_box()
        assert box["x"] >= 0, (name, box)
        assert box["x"] + box["width"] <= PHONE["width"], (name, box)
        assert box["height"] >= 24
    assert accessibility_violations(page) == []
    screenshot(page, "studio-phone")

    # Delete from the list: a dialog asks, then the card goes without a reload.
    card.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this video?")
    assert dialog.is_visible()
    assert accessibility_violations(page) == []
    dialog.get_by_role("button", name="Cancel").click()
    assert card.is_visible()
    card.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_text("Deleted “holiday”.").wait_for()
    assert page.locator("tr", has_text="holiday").count() == 0
    page.reload()
    assert page.locator("tr", has_text="holiday").count() == 0

    # The edit page: after a save the heading and the tab show the new title.
    page.locator("tr", has_text="Beach party").get_by_role("link", name="Edit").click()
    page.get_by_label("Title", exact=True).fill("Beach party at dusk")
    page.get_by_role("button", name="Save details").click()
    page.get_by_text("Details saved.").wait_for()
    assert page.get_by_test_id("heading").text_content() == "Beach party at dusk"
    assert page.title() == "Beach party at dusk · StreamGate"
    assert page.evaluate(NO_OVERFLOW)

    # The poster: a frame of the storyboard, taken from the original, shows at once.
    before = page.locator("#poster-preview").get_attribute("src")
    frame = page.get_by_role("button", name="Use the frame at 0:00")
    frame.click()
    page.get_by_text("Poster saved.").wait_for()
    assert frame.get_attribute("aria-pressed") == "true"
    after = page.locator("#poster-preview").get_attribute("src")
    assert after != before
    assert "?v=" in after
    assert page.evaluate(NO_OVERFLOW)
    assert accessibility_violations(page) == []
    screenshot(page, "edit-phone")


def test_a_file_that_is_not_a_video_fails_without_retry_and_is_replaced(stack, page, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"meeting notes, not a video\n" * 2000)
    video = make_video(tmp_path / "clip.mp4", seconds=2, size="320x240")
    sign_in(page, stack)
    page.set_viewport_size(PHONE)
    page.goto(f"{stack}/studio/upload/")
    page.evaluate(DROP, ["notes.mp4", base64.b64encode(notes.read_bytes()).decode()])
    item = row(page, 1)
    wait_until(page, status_is(1, "failed"), 60)
    message = item.locator("[data-role=message]").text_content()
    assert message == "This file is not a video we can read. Upload an MP4, MOV, MKV or WebM video."
    assert not item.get_by_role("button", name="Retry").is_visible()
    assert item.get_by_text("Replace the file").is_visible()
    assert page.evaluate(NO_OVERFLOW)
    screenshot(page, "upload-failed-phone")

    # Its edit page: why, no retry, no embed code for a video that cannot play, and Replace.
    item.get_by_role("link", name="Edit").click()
    assert "This file cannot be used." in page.get_by_test_id("failure").text_content()
    assert page.locator("#retry").count() == 0
    assert page.locator("#snippet").count() == 0
    assert page.get_by_test_id("no-embed").is_visible()
    assert page.evaluate(NO_OVERFLOW)
    studio = page.context.new_page()  # the studio list, open meanwhile in another tab
    studio.on("pageerror", lambda error: page.errors.append(str(error)))
    studio.goto(f"{stack}/studio/")
    card = studio.locator("tr", has_text="notes")
    assert card.get_attribute("data-status") == "failed"
    assert card.locator("img[data-role=poster]").is_hidden()
    page.bring_to_front()
    page.get_by_role("link", name="Replace the file").click()
    page.get_by_text("The file you choose replaces the file of “notes”.").wait_for()
    page.set_input_files("#file", str(video))
    assert row(page, 1).get_by_label("Title").input_value() == "notes"
    wait_until(page, status_is(1, "ready"), 90)
    assert row(page, 1).get_by_role("link", name="Watch").is_visible()
    # The other tab's card followed it live: ready, its poster shown, no reload.
    live = f"tr[data-content-id='{card.get_attribute('data-content-id')}']"
    wait_until(studio, f"document.querySelector(\"{live}\").dataset.status === 'ready'", 10)
    wait_until(studio, f'document.querySelector("{live} img[data-role=poster]:not([hidden])")')
    assert card.locator("[data-role=badge]").text_content() == "Ready"
    assert card.locator("[data-role=error]").count() == 0
    assert card.get_by_role("link", name="Watch").is_visible()


def test_cancelling_an_upload_removes_its_row_and_its_video(stack, page, tmp_path):
    big = make_padded_video(tmp_path / "long-take.mp4", total_bytes=4 * 1024 * 1024)
    sign_in(page, stack)

    def slow_patches(route):
        if route.request.method == "PATCH":
            time.sleep(0.15)  # a slow uplink, so that the cancel lands mid-upload
        route.continue_()

    page.route("**/api/v1/uploads/**", slow_patches)
    page.goto(f"{stack}/studio/upload/")
    count = "fetch('/api/v1/contents/?owner=me').then((r) => r.json()).then((b) => b.count)"
    before = page.evaluate(count)
    page.set_input_files("#file", str(big))
    wait_until(page, "parseInt(document.querySelector('[data-role=percent]').textContent) >= 3")
    row(page, 1).get_by_role("button", name="Cancel the upload of long-take.mp4").click()
    page.get_by_text("The upload of long-take.mp4 was cancelled.").wait_for()
    assert page.locator("li.queue-item").count() == 0
    assert page.evaluate(count) == before
