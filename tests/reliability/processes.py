"""Ways to run kubestash service mode in the reliability tests, and the RSS of a process.

The service runs on an event loop thread of the test process (`ServiceThread`) or as a child
process that a test can kill (`ServiceProcess`). `TcpRelay` stands between the service and
the API server, to play an API server that is down and comes back.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import httpx

from renderer.kube import KubeClient
from renderer.scheduler import ScheduleTiming
from renderer.service import Service
from renderer.settings import Settings
from renderer.stream import StreamTiming
from renderer.sync import Syncer
from renderer.testing.aws import free_port

REPO = Path(__file__).resolve().parents[2]
FAST_STREAM = StreamTiming(poll_interval=0.05, describe_interval=0.5, restart_initial=0.1)


class ServiceThread:
    """A Service running on its own event loop thread, with an HTTP client for it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.http: httpx.Client | None = None

    def start(self) -> ServiceThread:
        self.thread.start()
        self.call(self.service.start)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.service.port}", timeout=30)
        return self

    def call(self, coroutine_function: Any, timeout: float = 30) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine_function(), self.loop)
        return future.result(timeout)

    def history(self) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            return list(self.service.scheduler.history)

        return self.call(read)

    def stop(self) -> bool:
        """Stop the service as SIGTERM would.

        Returns what Service.stop returns (True when every sync thread finished), or True
        when the service was stopped already.
        """
        if self.http is not None:
            self.http.close()
            self.http = None
        finished = True
        if self.thread.is_alive():
            finished = self.call(self.service.stop)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        return finished


def start_service(
    settings: Settings,
    *,
    session: boto3.Session,
    kubeconfig: str,
    timing: ScheduleTiming | None = None,
) -> ServiceThread:
    """Start service mode in this process with a Syncer and clients of its own."""
    kube = KubeClient(settings, kubeconfig=kubeconfig)
    syncer = Syncer(settings, kube=kube, session=session)
    service = Service(
        settings,
        host="127.0.0.1",
        syncer=syncer,
        kube=kube,
        session=session,
        stream_timing=FAST_STREAM,
        schedule_timing=timing,
    )
    return ServiceThread(service).start()


class ServiceProcess:
    """`python -m renderer.service` as a child process, its output in a log file."""

    def __init__(self, environ: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {key: value for key, value in os.environ.items() if not key.startswith("KUBESTASH")}
        env.update(environ)
        env["PORT"] = str(self.port)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._output = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "renderer.service", "--host", "127.0.0.1"],
            env=env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str) -> httpx.Response | None:
        """GET `path`; None while the process accepts no connection."""
        try:
            return self.http.get(path)
        except httpx.TransportError:
            return None

    def ready(self) -> bool:
        answer = self.get("/readyz")
        return answer is not None and answer.status_code == 200

    def status(self) -> dict[str, Any]:
        answer = self.get("/status")
        return answer.json() if answer is not None and answer.status_code == 200 else {}

    def output(self) -> str:
        self._output.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Kill the process if it still runs (tests that need SIGTERM send it themselves)."""
        self.http.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._output.close()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"process {pid} has no VmRSS line")


class TcpRelay:
    """Forward connections from a loopback port to a target, while `up`.

    Before `start()` and after `stop()` nothing listens on the port, so clients get
    "connection refused", as from an API server that is down.
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._stopping.clear()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.2)
                for source in readable:
                    chunk = source.recv(65536)
                    if not chunk:
                        return
                    (upstream if source is client else client).sendall(chunk)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
