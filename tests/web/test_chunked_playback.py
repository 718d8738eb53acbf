"""Early playback in a real browser: a long video encoded in chunks plays on its watch page while
it is still processing, from its first second (not at the live edge of its EVENT playlist), on
into chunks published after playback began, to ``ended`` once the last chunk ends its
playlists; the line under the player and the studio list follow it over the websocket.

The site is uvicorn (websockets included) on this test's own database, Redis and media folder;
the chunks are encoded here, one by one, as transcode workers would (``planned``, from
tests/transcode/conftest.py, plans the job as its task does)."""

import time
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

import pytest
from django.db import connection, connections

from apps.transcode.services.chunking import chunk_run
from tests.factories import ContentFactory, CreatorFactory
from tests.support.media import make_video
from tests.support.processes import free_port, web_server
from tests.transcode.conftest import TEST_LADDER, planned, store_source
from tests.web.conftest import screenshot, wait_until
from tests.web.test_viewer import off_the_loop

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 8  # seconds: two 4-second segments
SECONDS = 32  # four video chunks
PASSWORD = "pass-word-1"
# The video's events (with its time and the seconds buffered ahead) and the line under the player
# as it changes (watch.js): recorded by the page itself, so that nothing between polls is missed.
RECORDER = """() => {
  const video = document.getElementById("video");
  const note = document.getElementById("processing-note");
  window.sgSeen = { events: [], notes: [note.textContent] };
  const ahead = () => {
    const now = video.currentTime;
    for (let i = 0; i < video.buffered.length; i++) {
      const [start, end] = [video.buffered.start(i), video.buffered.end(i)];
      if (start <= now + 0.1 && now <= end) return +(end - now).toFixed(3);
    }
    return 0;
  };
  for (const name of ["playing", "waiting", "seeking", "ended", "error"]) {
    video.addEventListener(name, () => {
      window.sgSeen.events.push([name, video.currentTime, ahead()]);
    });
  }
  new MutationObserver(() => window.sgSeen.notes.push(note.textContent))
    .observe(note, { childList: true, characterData: true, subtree: true });
}"""
WHERE = """() => {
  const video = document.getElementById("video");
  return {
    time: video.currentTime,
    duration: video.duration,
    ended: video.ended,
    error: video.error && video.error.message,
    played: video.played.length ? video.played.start(0) : null,
    note: document.getElementById("processing-note").textContent,
  };
}"""


@pytest.fixture
def chunked(settings, tmp_path):
    """Quick encodes (ultrafast, 480p and 360p) cut into chunks of 8 s past 10 s of source."""
    settings.TRANSCODE_PRESET = "ultrafast"
    settings.TRANSCODE_LADDER = TEST_LADDER[-2:]
    settings.TRANSCODE_STORYBOARD = {"interval": 1, "width": 160, "columns": 5, "rows": 5}
    settings.TRANSCODE_WORK_DIR = tmp_path / "work"
    settings.TRANSCODE_CHUNK_THRESHOLD_SECONDS = 10
    settings.TRANSCODE_CHUNK_SECONDS = CHUNK


@pytest.fixture
def site(transactional_db, settings, tmp_path, media_root):
    """uvicorn serving this test's database, Redis (the channel layer: what the chunks
    broadcast here reaches its websockets) and media folder; stopped before the database is
    emptied."""
    import os

    db = connection.settings_dict
    user = quote(db["USER"] or "root") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    where = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database_url = f"postgres://{user}@{where}/{db['NAME']}"
    assert media_root == tmp_path / "media"  # the server's MEDIA_ROOT: STREAMGATE_VAR_DIR/media
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("S3_", "SENTRY_", "DJANGO_ALLOW_ASYNC"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="streamgate.settings.test",
        DATABASE_URL=database_url,
        REDIS_URL=settings.REDIS_URL,
        STREAMGATE_VAR_DIR=str(tmp_path),
        STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DJANGO_DEBUG="0",
        LOG_LEVEL="WARNING",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    with web_server(env, logs / "web.log", port) as base:
        yield base


def in_background(function, *args) -> Future:
    """``function`` run in a thread of its own while this one drives the browser; its database
    connection is closed when it is done."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def run_chunks(*chunk_ids: int) -> list[float]:
    """Encode and publish these chunks in order; how long each took."""
    took = []
    for chunk_id in chunk_ids:
        started = time.monotonic()
        chunk_run(chunk_id=chunk_id)
        took.append(round(time.monotonic() - started, 2))
    return took


def websocket_frames(page) -> list[str]:
    """The frames the page's websockets receive, recorded from now on."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    return frames


def says(selector: str, text: str) -> str:
    """A page expression: the element's text includes ``text``."""
    return f"document.querySelector({selector!r}).textContent.includes({text!r})"


def sign_in(page, base: str, username: str, next_path: str) -> None:
    page.goto(f"{base}/signin/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}{next_path}")


def test_a_video_still_processing_plays_from_the_start_into_chunks_published_meanwhile(
    site, page, chunked, tmp_path
):
    clip = make_video(tmp_path / "long.mp4", seconds=SECONDS, size="854x480", rate=25)

    def prepare():
        owner = CreatorFactory(username="maker")
        owner.set_password(PASSWORD)
        owner.save()
        content = store_source(ContentFactory(owner=owner, title="Long take"), clip)
        job, chunks = planned(content, tmp_path)
        return content, {f"{kind}-{index}": chunk.pk for (kind, index), chunk in chunks.items()}

    content, chunks = off_the_loop(prepare)
    assert sorted(chunks) == ["audio-0", "video-0", "video-1", "video-2", "video-3"]
    watch = f"/watch/{content.id}/"

    # Nothing watchable yet: the page says so, as for any video processing, and waits.
    early = page.context.new_page()
    early_errors: list[str] = []
    early.on("pageerror", lambda error: early_errors.append(str(error)))
    early_frames = websocket_frames(early)
    sign_in(early, site, "maker", watch)
    state = early.get_by_test_id("state")
    assert "still processing" in state.text_content()
    assert early.get_by_test_id("processing-note").text_content() == ""
    studio = page.context.new_page()
    studio_frames = websocket_frames(studio)
    studio.goto(f"{site}/studio/")
    row = studio.locator(f"tr[data-content-id='{content.id}']")
    assert row.locator(".watch").is_hidden()
    wait_until(early, "document.readyState === 'complete'")
    deadline = time.monotonic() + 10
    while not (early_frames and studio_frames):  # both follow the content now
        assert time.monotonic() < deadline, "no websocket message"
        early.wait_for_timeout(100)

    # The audio and the first chunk: the waiting page starts its player by itself, the studio
    # offers Watch.
    first = off_the_loop(run_chunks, chunks["audio-0"], chunks["video-0"])
    early.locator("#video").wait_for(state="visible")
    note = early.get_by_test_id("processing-note")
    wait_until(early, says("#processing-note", "0:08 of 0:32"))
    assert note.text_content() == (
        "Still processing: 0:08 of 0:32 ready — it plays as the rest arrives."
    )
    assert early.get_by_test_id("state").is_hidden()
    row.locator(".watch").wait_for(state="visible")
    # This viewer catches up with the encoder: the line says so while the video waits, and
    # playback goes on when the second chunk arrives (which moves both lines).
    early.get_by_role("button", name="Play").click()
    early.evaluate("() => { document.getElementById('video').currentTime = 6; }")
    wait_until(early, says("#processing-note", "you have reached the end of what is ready"))
    assert note.text_content() == (
        "Still processing: you have reached the end of what is ready (0:08 of 0:32); playback"
        " goes on as soon as the next part arrives."
    )
    first += off_the_loop(run_chunks, chunks["video-1"])
    wait_until(early, says("#processing-note", "0:16 of 0:32 ready — it plays as the rest"))
    wait_until(early, "document.getElementById('video').currentTime > 9")
    assert row.locator("[data-role=playable]").text_content() in (
        "0:08 of 0:32 ready to watch",
        "0:16 of 0:32 ready to watch",
    )
    wait_until(studio, says("[data-role=playable]", "0:16 of 0:32 ready to watch"))
    early.close()
    assert not early_errors, early_errors

    # A viewer opens the page now: 16 s are ready, hls.js's live edge would be at 4 s.
    page.goto(f"{site}{watch}")
    page.locator("#video").wait_for(state="visible")
    assert page.get_by_test_id("processing-note").text_content() == (
        "Still processing: 0:16 of 0:32 ready — it plays as the rest arrives."
    )
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 0.5", 30)
    screenshot(page, "watch-processing-playable")

    # The other chunks are encoded while the viewer watches.
    rest = in_background(run_chunks, chunks["video-2"], chunks["video-3"])
    seen = []
    deadline = time.monotonic() + SECONDS + 60
    while True:
        where = page.evaluate(WHERE)
        seen.append(where)
        if where["ended"] or where["error"] or time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    later = rest.result(timeout=60)
    record = page.evaluate("() => window.sgSeen")
    summary = f"chunks took {first + later} s; events {record['events']}; notes {record['notes']}"
    assert where["ended"], f"{summary}; last {where}"
    assert where["error"] is None, summary
    assert where["time"] >= SECONDS - 0.3, summary
    # Played from the start, not from the live edge (16 s ready - 3 segments of 4 s = 4 s, where
    # hls.js would seek to first), and never ran out of media once it had begun: no stall (a
    # `waiting` with seconds buffered ahead is the decoder catching up on a busy machine).
    moves = [event for event in record["events"] if event[0] in ("playing", "seeking")]
    assert moves[0][0] == "playing", summary
    assert moves[0][1] < 0.5, summary
    assert not [e for e in record["events"] if e[0] in ("seeking", "error")], summary
    assert not [e for e in record["events"] if e[0] == "waiting" and e[2] < 0.5], summary
    assert record["events"][-1][0] == "ended", summary
    assert where["played"] is not None, summary
    assert where["played"] < 0.5, summary
    # Through each chunk's start, those published after playback began included.
    times = [sample["time"] for sample in seen]
    for boundary in (8, 16, 24):
        assert any(boundary - 2 < t < boundary + 2 for t in times), (boundary, summary)
    # The line under the player followed the chunks, then went with the end of processing.
    notes = [text for text in record["notes"] if text]
    assert notes[0] == "Still processing: 0:16 of 0:32 ready — it plays as the rest arrives."
    assert "Still processing: 0:24 of 0:32 ready — it plays as the rest arrives." in notes
    assert record["notes"][-1] == ""
    assert page.get_by_test_id("state").is_hidden()
    assert page.locator("#controls").is_visible()
    # The studio, too: Watch stays, the line goes, the badge says Ready.
    wait_until(studio, says("[data-role=badge]", "Ready"))
    assert row.locator(".watch").is_visible()
    assert row.locator("[data-role=playable]").text_content() == ""
    studio.close()


def test_a_video_that_fails_while_watched_early_stops_and_says_why(
    site, page, chunked, tmp_path, media_root
):
    clip = make_video(tmp_path / "doomed.mp4", seconds=24, size="640x360", rate=25)

    def prepare():
        owner = CreatorFactory(username="maker")
        owner.set_password(PASSWORD)
        owner.save()
        content = store_source(ContentFactory(owner=owner, title="Doomed take"), clip)
        job, chunks = planned(content, tmp_path)
        run_chunks(chunks["audio", 0].pk, chunks["video", 0].pk)
        return content, chunks["video", 2].pk

    content, later = off_the_loop(prepare)
    sign_in(page, site, "maker", f"/watch/{content.id}/")
    page.locator("#video").wait_for(state="visible")
    page.get_by_role("button", name="Play").click()
    wait_until(page, "document.getElementById('video').currentTime > 0.5")
    # The source is damaged after the first chunk: the next chunk's FFmpeg fails, the job fails
    # and what was watchable goes (apps/transcode/services/chunking.py).
    source = media_root / content.source_path
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    off_the_loop(run_chunks, later)
    state = page.get_by_test_id("state")
    state.wait_for(state="visible")
    assert state.text_content().startswith("Processing failed: FFmpeg could not encode this video")
    assert page.locator("#video").is_hidden()
    assert page.get_by_test_id("processing-note").text_content() == ""
    assert page.evaluate("() => document.getElementById('video').paused")


# Players of other sites, each told to start at 0: hls.js (startPosition), dash.js (a start time
# from MPD@availabilityStartTime), Shaka (load's startTime). Left to themselves, dash.js and Shaka
# DASH start a dynamic MPD near its live edge, hls.js and Shaka HLS an EVENT playlist 3 target
# durations before its end. Chromium's native HLS is left out: it fails on an EVENT playlist
# ("PipelineStatus::DEMUXER_ERROR_COULD_NOT_PARSE" once it has loaded the last segment), told where
# to start or not; /watch/ plays with hls.js wherever Media Source Extensions exist, Chromium's too.
LIVE_PLAYERS = {"hlsjs": "hls", "dashjs": "dash", "shaka-dash": "dash", "shaka-hls": "hls"}
LIVE_SECONDS = 24  # three chunks of 8 s: two published before the players start, one after


def _reports(pages: dict) -> dict[str, dict]:
    return {player: page.evaluate("() => window.report") for player, page in pages.items()}


def test_other_players_start_a_video_still_processing_at_0_and_play_into_later_chunks(
    site, browser, player_site, chunked, tmp_path
):
    from apps.access.playback import playback_grant

    clip = make_video(tmp_path / "live.mp4", seconds=LIVE_SECONDS, size="640x360", rate=25)

    def prepare():
        content = store_source(ContentFactory(title="Live take"), clip)
        job, chunks = planned(content, tmp_path)
        run_chunks(*(chunks[kind, index].pk for kind, index in (("audio", 0), ("video", 0))))
        run_chunks(chunks["video", 1].pk)
        content.refresh_from_db()
        grant = playback_grant(user=content.owner, content=content)  # what the API gives
        return grant, chunks["video", 2].pk

    grant, last = off_the_loop(prepare)
    urls = {"hls": site + grant.hls_path, "dash": site + grant.dash_path}
    pages = {}
    for player, kind in LIVE_PLAYERS.items():
        pages[player] = browser.new_context().new_page()
        pages[player].goto(f"{player_site}/index.html")
        pages[player].evaluate(
            "([player, url, ms]) => { window.harnessLive(player, url, 0, ms); }",
            [player, urls[kind], (LIVE_SECONDS + 40) * 1000],
        )
    try:
        deadline = time.monotonic() + 40
        while not all(r.get("started") or r["done"] for r in _reports(pages).values()):
            assert time.monotonic() < deadline, _reports(pages)
            time.sleep(0.2)
        publishing = in_background(run_chunks, last)  # while every player plays
        deadline = time.monotonic() + LIVE_SECONDS + 45
        reports = _reports(pages)
        while not all(r["done"] for r in reports.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            reports = _reports(pages)
        publishing.result(timeout=60)
    finally:
        for page in pages.values():
            page.context.close()
    failures = {}
    for player, report in reports.items():
        moves = [event for event in report["timeline"] if event.startswith(("playing", "seeking"))]
        if report["errors"] or not report["ended"]:
            failures[player] = f"did not end: {report['errors']}, stage {report['stage']}"
        elif not moves[0].startswith("playing@") or float(moves[0].split("@")[1]) >= 0.5:
            failures[player] = f"did not start at 0: {report['timeline']}"
        elif report["maxTime"] < LIVE_SECONDS - 0.3:
            failures[player] = f"ended at {report['maxTime']} of {LIVE_SECONDS}"
    assert not failures, failures
