"""`make run`'s situation: no servers at all, separate web and worker processes.

SQLite, the filesystem broker and the filesystem channel layer must carry an API write to the
worker and a status change from another process to a browser's websocket.
"""

import json
import time
import urllib.request

from websockets.sync.client import connect

from tests.support.processes import celery_worker, embedded_env, http_get, manage, web_server


def api(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict | None]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        raw = response.read()
        return response.status, json.loads(raw) if raw else None


def test_whole_stack_without_servers(tmp_path, logs_dir):
    env = embedded_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    login = manage(env, "demo_account")
    assert "Demo creator: user 'demo'" in login
    token = manage(env, "create_api_token", "maker", "--creator").strip()

    with (
        web_server(env, logs_dir / "web.log") as base,
        celery_worker(env, logs_dir / "worker.log", queues="uploads,transcode,chain,default"),
    ):
        assert http_get(f"{base}/healthz")[0] == 200
        status, ready = http_get(f"{base}/readyz")
        assert status == 200, ready
        assert http_get(f"{base}/admin/login/")[0] == 200
        status, schema = http_get(f"{base}/api/schema/?format=json")
        assert status == 200
        assert json.loads(schema)["openapi"].startswith("3.")

        status, content = api("POST", f"{base}/api/v1/contents/", token, {"title": "Laptop"})
        assert status == 201
        content_id = content["id"]

        ws_url = base.replace("http", "ws") + f"/ws/contents/{content_id}/"
        with connect(
            ws_url,
            origin=base,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=10,
        ) as websocket:
            first = json.loads(websocket.recv(timeout=10))
            assert first.items() >= {"type": "status", "status": "draft", "error": None}.items()
            # Another process (as the Celery worker would) changes the status.
            manage(
                env,
                "shell",
                "-c",
                (
                    "from apps.content.models import Content, ContentStatus;"
                    "from apps.content.services import content_status_set;"
                    f"content_status_set(content=Content.objects.get(pk='{content_id}'),"
                    "status=ContentStatus.FAILED, error='Not a video file.')"
                ),
            )
            started = time.monotonic()
            message = json.loads(websocket.recv(timeout=10))
            assert (
                message.items()
                >= {"type": "status", "status": "failed", "error": "Not a video file."}.items()
            )
            assert time.monotonic() - started < 5

        source = tmp_path / "var" / "media" / "sources" / content_id
        source.mkdir(parents=True)
        (source / "original.mp4").write_bytes(b"video")
        assert api("DELETE", f"{base}/api/v1/contents/{content_id}/", token)[0] == 204
        deadline = time.monotonic() + 30
        while source.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not source.exists(), (logs_dir / "worker.log").read_text()[-2000:]
