"""A real nginx (Debian's binary) running the shipped deploy/nginx/ configuration, for tests
and benchmarks.

The files under deploy/nginx/ are templates with ``${STREAMGATE_...}`` placeholders, filled in
at install time by envsubst or by the nginx image's template step. ``render`` does the same
substitution (only the names it is given, as ``envsubst '$A $B'`` does) and refuses to leave
one unfilled, so what runs here is the shipped text with this test's paths, never a second
configuration. ``nginx_server`` runs it as the current user under its own prefix (pid, logs,
temporary files) on a loopback port; ``nginx -t`` checks it. No library runs nginx for us;
this is a subprocess call and a few files.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ROOT, free_port, spawned, wait_for_port

DEPLOY = ROOT / "deploy" / "nginx"
# envsubst's two spellings: ${NAME} and $NAME.
PLACEHOLDER = re.compile(r"\$\{(STREAMGATE_[A-Z0-9_]+)\}|\$(STREAMGATE_[A-Z0-9_]+)")


def nginx_binary() -> str | None:
    """Debian's nginx (tests/nginx.sh installs it), or None when this machine has none."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``${NAME}`` of ``values`` replaced; a placeholder not in ``values``
    is an error (envsubst would leave it, and nginx would fail on it later)."""
    missing = sorted({name for name in placeholders(text) if name not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda found: values[found.group(1) or found.group(2)], text)


def placeholders(text: str) -> set[str]:
    """The ``STREAMGATE_`` names ``text`` uses."""
    return {braced or bare for braced, bare in PLACEHOLDER.findall(text)}


@dataclass(frozen=True)
class Nginx:
    prefix: Path  # pid, logs/, tmp/ and conf/ (the rendered files)
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"


def prepare(
    prefix: Path, *, site: str = "streamgate.conf", port: int | None = None, **values: str
) -> Nginx:
    """Render every deploy/nginx/ file into ``prefix``/conf with ``values`` (``STREAMGATE_``
    names without the prefix: ``upstream="127.0.0.1:8000"``), serving ``site`` on ``port``."""
    port = port or free_port()
    conf = prefix / "conf"
    for folder in (conf, prefix / "logs", prefix / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    filled = {
        "STREAMGATE_NGINX_DIR": str(conf),
        "STREAMGATE_NGINX_SITE": str(conf / site),
        "STREAMGATE_LISTEN": f"127.0.0.1:{port}",
        "STREAMGATE_SERVER_NAME": "_",
        **{f"STREAMGATE_{name.upper()}": value for name, value in values.items()},
    }
    for template in sorted(DEPLOY.iterdir()):
        if template.name in ("nginx.conf", site) or template.suffix == ".inc":
            (conf / template.name).write_text(render(template.read_text(), filled))
    return Nginx(prefix=prefix, port=port)


def command(server: Nginx, *extra: str) -> list[str]:
    """nginx's command line for ``server``: its prefix, config and error log; as root, the
    workers stay root (nginx would switch them to nobody, who cannot read tmp folders)."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (tests/nginx.sh installs it)")
    args = [
        binary,
        "-p",
        f"{server.prefix}/",
        "-c",
        str(server.config),
        "-e",
        str(server.error_log),
    ]
    directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    return [*args, "-g", directives, *extra]


def config_test(server: Nginx) -> subprocess.CompletedProcess:
    """``nginx -t`` on the rendered configuration (its verdict is on stderr)."""
    return subprocess.run(
        command(server, "-t"), capture_output=True, text=True, timeout=30, check=False
    )


@contextmanager
def nginx_server(server: Nginx) -> Iterator[Nginx]:
    """Run nginx on ``server``'s rendered configuration until the block ends."""
    checked = config_test(server)
    assert checked.returncode == 0, f"nginx -t failed:\n{checked.stderr}"
    log = server.prefix / "logs" / "stdout.log"
    with spawned(command(server), env=dict(os.environ), log=log) as process:
        wait_for_port(server.port, timeout=10, process=process, log=server.error_log)
        yield server
