"""A creator in a real browser against the whole embedded stack (uvicorn, a Celery worker,
SQLite, the filesystem broker and channel layer): resume an upload after a reload. (Dropping
files and following them live to Ready: tests/web/test_studio.py, on this module's stack.)"""

import time

import pytest

from tests.support.media import make_padded_video
from tests.support.processes import celery_worker, embedded_env, free_port, manage, web_server
from tests.web.conftest import wait_until

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The embedded stack with a creator 'maker'; small PATCHes so progress is visible."""
    folder = tmp_path_factory.mktemp("web-stack")
    env = embedded_env(
        folder / "var",
        DJANGO_DEBUG="0",
        WEB_UPLOAD_CHUNK_SIZE=str(256 * 1024),
        TRANSCODE_PRESET="ultrafast",
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "create_api_token", "maker", "--creator")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        f"u = get_user_model().objects.get(username='maker'); u.set_password({PASSWORD!r});"
        "u.save()",
    )
    logs = folder / "logs"
    logs.mkdir()
    port = free_port()
    # The site's own origin: the websocket accepts the session cookie from it alone.
    env["STREAMGATE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    with (
        web_server(env, logs / "web.log", port) as base,
        celery_worker(env, logs / "worker.log", queues="uploads,transcode,default"),
    ):
        yield base


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/signin/?next=/studio/")
    page.get_by_label("Username").fill("maker")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/studio/")


# The overall progress the upload page shows for its first file.
OVERALL = "parseInt(document.querySelector('li.queue-item [data-role=percent]')?.textContent)"

DROP = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "video/mp4" }));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragover", "drop"]) {
    const options = { dataTransfer: transfer, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent(type, options));
  }
}"""


def test_an_upload_resumes_after_a_reload(stack, page, tmp_path):
    big = make_padded_video(tmp_path / "long-take.mp4", total_bytes=6 * 1024 * 1024)
    sign_in(page, stack)

    def slow_patches(route):
        if route.request.method == "PATCH":
            time.sleep(0.15)  # a slow uplink, so that the reload lands mid-upload
        route.continue_()

    page.route("**/api/v1/uploads/**", slow_patches)
    page.goto(f"{stack}/studio/upload/")
    page.set_input_files("#file", str(big))
    # A fifth of the bytes: the bar's first 30 points are the upload's (apps/content/progress.py).
    wait_until(page, f"{OVERALL} >= 6")
    page.reload()

    offsets: list[int] = []
    page.on(
        "request",
        lambda request: (
            offsets.append(int(request.headers["upload-offset"]))
            if request.method == "PATCH"
            else None
        ),
    )
    page.set_input_files("#file", str(big))  # the same file, picked again
    page.get_by_text("Resuming your earlier upload").wait_for()
    wait_until(
        page,
        "['queued', 'processing', 'ready'].includes("
        "document.querySelector('li.queue-item').dataset.status)",
        60,
    )
    assert offsets[0] >= 0.15 * big.stat().st_size  # it went on from the server's offset
