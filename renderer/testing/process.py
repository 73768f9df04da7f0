"""Server subprocesses on 127.0.0.1 for tests, the demo and the benchmark."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


class ServerProcess:
    """A server subprocess that is ready once `probe_url` responds, stopped by its PID."""

    name = "server"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def launch(
        self,
        command: list[str],
        probe_url: str,
        *,
        timeout: float,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """Start `command` and wait until `probe_url` responds and `ready()` is true."""
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
            try:
                urllib.request.urlopen(probe_url, timeout=1).close()
                if ready():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not respond on {probe_url} within {timeout:g} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
