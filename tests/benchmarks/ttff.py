"""Time to first frame on the watch page, against hls.js alone on a bare page.

    python tests/benchmarks/ttff.py [--runs 5] [--seconds 12]

Starts the web server (uvicorn, embedded settings in a temporary folder), encodes a generated
720p clip with ``manage.py ingest`` (the configured ladder) and serves, from a second loopback
server of another origin, a bare page with hls.js alone (tests/support/ttff_page/) and a copy of
the same FFmpeg output as static files. Debian's chromium (headless) then loads, in a fresh
browser context each time (an empty HTTP cache), round-robin:

- ``/watch/<id>/``: our page (its scripts, the playback grant, hls.js, our controls);
- the bare page playing the same signed stream URL from our server (hls.js's defaults);
- the bare page playing the static copy (no Django at all).

Each run clicks Play (from a script in the page) the moment the page shows it, and measures,
from navigation start, the first video frame presented with a media time above zero
(requestVideoFrameCallback; the first ``timeupdate`` with ``currentTime > 0`` without it).
Prints the median, min and max of ``--runs`` runs per page, where the time goes on our page,
and the ratios.
Goal: the watch page's median under 1 s.
"""

import argparse
import functools
import re
import shutil
import statistics
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402
    embedded_env,
    free_port,
    manage,
    start_web,
    stop,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]
GOAL_SECONDS = 1.0

# Runs before the page's own scripts: clicks Play the moment the page shows it (a viewer with
# instant reflexes; Playwright's own click polls with back-off and would add its waits, up to
# 500 ms, to the page it waits longest for) and notes the first frame past 0 s. A click from a
# script is no user gesture, hence chromium's --autoplay-policy flag below.
PROBE = """
(() => {
  const mark = (name, at) => { if (window[name] === undefined) window[name] = at; };
  const offer = () => {
    const button = document.getElementById("play");
    if (window.sgClickAt !== undefined || !button || button.offsetParent === null) return;
    mark("sgClickAt", performance.now());
    button.click();
  };
  document.addEventListener("DOMContentLoaded", () => {
    const video = document.querySelector("video");
    const frame = () => video.requestVideoFrameCallback((now, meta) =>
      meta.mediaTime > 0 ? mark("sgFirstFrameAt", now) : frame());
    if (video.requestVideoFrameCallback) video.addEventListener("playing", frame, { once: true });
    video.addEventListener("timeupdate", () => {
      if (video.currentTime > 0 && !video.paused) mark("sgPlayingAt", performance.now());
    });
    new MutationObserver(offer).observe(document.body, { subtree: true, attributes: true });
    offer();
  });
})();
"""
READ = """
(() => {
  const grant = performance.getEntriesByType("resource").find((e) => e.name.includes("/playback/"));
  return {
    frame: window.sgFirstFrameAt ?? window.sgPlayingAt ?? null,
    click: window.sgClickAt ?? null,
    grant: grant ? grant.responseEnd : null,
    loaded: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
  };
})()
"""


def prepare(var: Path, env: dict[str, str], seconds: float) -> tuple[str, str]:
    """Encode a 720p clip with `manage.py ingest`; its content id and signed HLS master path."""
    from tests.support.media import make_video

    clip = make_video(var / "clip.mp4", seconds=seconds, size="1280x720", rate=30)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "create_api_token", "bench", "--creator")
    out = manage(env, "ingest", str(clip), "--title", "Bench", "--owner", "bench")
    path = "/" + re.search(r"HLS:\s+(\S+)", out).group(1).split("/", 3)[3]
    return path.split("/")[3], path


def peer_folder(var: Path, content_id: str) -> Path:
    """The bare page, hls.js and a static copy of the published output, in one folder."""
    folder = var / "peer"
    shutil.copytree(ROOT / "tests/support/ttff_page", folder)
    shutil.copy(ROOT / "static/dist/hls.min.js", folder / "hls.min.js")
    job = next((var / "media" / "renditions" / content_id).iterdir())
    shutil.copytree(job, folder / "media")
    return folder


def static_server(folder: Path) -> tuple[ThreadingHTTPServer, int]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per segment would drown the results
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def measure(browser, url: str) -> dict:
    """One cold load of ``url``, Play clicked when offered; times in ms from navigation start."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.add_init_script(PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url, wait_until="commit")
        for _ in range(400):
            times = page.evaluate(READ)
            if times["frame"] is not None:
                break
            page.wait_for_timeout(25)
        else:
            raise RuntimeError(f"no frame after 10 s on {url}: {errors}")
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"JavaScript errors on {url}: {errors}")
    return times


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.0f} ms   min {min(values):6.0f}   "
        f"max {max(values):6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=12, help="length of the clip")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sg-bench-ttff-") as folder:
        var = Path(folder)
        port = free_port()
        env = embedded_env(
            var,
            DJANGO_DEBUG="0",
            MEDIA_ENCRYPTION="0",  # as measured before; keys add one request per start
            STREAMGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            LOG_LEVEL="WARNING",
        )
        content_id, master = prepare(var, env, args.seconds)
        peer, peer_port = static_server(peer_folder(var, content_id))
        server = start_web(env, var / "web.log", port)
        base = f"http://127.0.0.1:{port}"
        pages = {
            "watch page (/watch/)": f"{base}/watch/{content_id}/",
            "hls.js alone, our stream": f"http://127.0.0.1:{peer_port}/?src={base}{master}",
            "hls.js alone, static files": f"http://127.0.0.1:{peer_port}/?src=media/master.m3u8",
        }
        results: dict[str, list[dict]] = {name: [] for name in pages}
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for url in pages.values():  # warm-up: first imports, first reads from disk
                    measure(browser, url)
                for _ in range(args.runs):
                    for name, url in pages.items():
                        results[name].append(measure(browser, url))
                browser.close()
        finally:
            stop(server)
            peer.shutdown()

    print(
        f"{args.seconds:g} s 720p clip, the configured ladder, loopback, headless chromium, "
        f"a fresh context per run, {args.runs} runs per page; navigation start -> first frame "
        "past 0 s, the click on Play included"
    )
    frames = {name: [run["frame"] for run in runs] for name, runs in results.items()}
    for name, values in frames.items():
        print(f"{name:28} {summary(values)}")
    ours = results["watch page (/watch/)"]
    for name, runs in results.items():
        after = [run["frame"] - run["click"] for run in runs]
        print(f"{'  of which Play -> frame':28} {summary(after)}   ({name})")
    print(
        "watch page, where the time goes (medians): page loaded "
        f"{statistics.median(r['loaded'] for r in ours):.0f} ms, playback grant answered "
        f"{statistics.median(r['grant'] for r in ours if r['grant']):.0f} ms, Play clicked "
        f"{statistics.median(r['click'] for r in ours):.0f} ms, first frame "
        f"{statistics.median(r['frame'] for r in ours):.0f} ms"
    )
    median = {name: statistics.median(values) for name, values in frames.items()}
    watch, stream, static = median.values()
    print(f"\nwatch page / hls.js alone on our stream = {watch / stream:.2f}")
    print(f"watch page / hls.js alone on static files = {watch / static:.2f}")
    verdict = "met" if watch < GOAL_SECONDS * 1000 else "NOT met"
    print(f"watch page median {watch:.0f} ms (goal < {GOAL_SECONDS * 1000:.0f} ms: {verdict})")


if __name__ == "__main__":
    main()
