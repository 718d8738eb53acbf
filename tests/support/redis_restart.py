"""A throwaway Redis that a test can kill (SIGKILL, as a crash or an OOM kill would) and start
again on the same port with the same data (append-only file), as `docker restart redis` does."""

import os
import signal
import subprocess
from pathlib import Path

from tests.support.processes import free_port, stop, wait_for_port


class RestartableRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RestartableRedis":
        log = self.folder / "redis.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.folder),
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout=10, process=self.process, log=log)
        return self

    def kill(self) -> None:
        """The server dies at once: the kernel closes every client's connection."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def close(self) -> None:
        if self.process is not None:
            stop(self.process)
