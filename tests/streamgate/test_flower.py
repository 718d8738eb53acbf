"""Flower as `make run` starts it (the Procfile's line): on its own port, behind basic auth."""

import base64
import urllib.request

from tests.support.processes import BIN, ROOT, embedded_env, free_port, spawned, wait_for_port


def get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_flower_from_the_procfile_requires_its_login(tmp_path, logs_dir):
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("flower:")
    )
    port = free_port()
    env = embedded_env(tmp_path, FLOWER_PORT=str(port), FLOWER_BASIC_AUTH="ops:s3cret-pass")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    command = line.split(":", 1)[1].strip()
    log = logs_dir / "flower.log"
    with spawned(["bash", "-c", f"exec {command}"], env=env, log=log) as process:
        wait_for_port(port, timeout=30, process=process, log=log)
        assert get(f"http://127.0.0.1:{port}/") == 401
        assert get(f"http://127.0.0.1:{port}/", "ops:wrong") == 401
        assert get(f"http://127.0.0.1:{port}/", "ops:s3cret-pass") == 200
