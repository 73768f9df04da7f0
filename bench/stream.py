"""Stream scenarios: kubestash's service, fed by credstash puts, observed through a watch.

The service runs as a child (`python -m renderer.service`, DRY_RUN=false, WAIT_TIME=0).
The benchmark writes new versions with `credstash.putSecret` and times each one from just
before the put to the moment a Kubernetes watch in this process delivers the new value.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from botocore.config import Config

from bench import protocol, workload
from bench.world import Calls, World, calls_of

logger = logging.getLogger(__name__)

SERVICE_APP = "kubestash-service"
WRITER_APP = "bench-writer"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=kubestash"
SETTLE_SECONDS = 0.3
VISIBLE_TIMEOUT = 60.0
READY_TIMEOUT = 1800.0

ValueKey = tuple[str, str, str, str]


class SecretWatch:
    """Watch managed Secrets in all namespaces and record when each key value first arrives.

    Only values delivered by watch events count, never the initial list, so the time
    recorded is when a change became visible to a watching client.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seen: dict[ValueKey, float] = {}
        self.condition = threading.Condition()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)

    def start(self) -> None:
        self._list()
        self.thread.start()

    def _list(self) -> None:
        """Take the current resource version of the managed Secrets to watch from."""
        params = {"labelSelector": MANAGED_SELECTOR, "limit": "1"}
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            listing = client.get("/api/v1/secrets", params=params)
            listing.raise_for_status()
            self.resource_version = listing.json()["metadata"]["resourceVersion"]

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._watch_once()
            except httpx.HTTPStatusError as error:
                logger.warning("Secret watch failed (%s); listing again", error)
                self._list()
            except httpx.HTTPError as error:
                logger.warning("Secret watch failed (%s); watching again", error)
                time.sleep(0.1)

    def _watch_once(self) -> None:
        params = {
            "watch": "1",
            "labelSelector": MANAGED_SELECTOR,
            "resourceVersion": self.resource_version,
            "timeoutSeconds": "30",
            "allowWatchBookmarks": "true",
        }
        timeout = httpx.Timeout(60, read=45)
        with httpx.stream(
            "GET", f"{self.base_url}/api/v1/secrets", params=params, timeout=timeout
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line or self.stopped.is_set():
                    continue
                self._record(json.loads(line), time.monotonic())

    def _record(self, event: dict[str, Any], arrived: float) -> None:
        if event.get("type") == "ERROR":
            # 410 Gone: the resource version fell out of the server's history. Changes made
            # until the new list are missed, and their waits time out and count as lost.
            logger.warning("Secret watch ended with %s; listing again", event.get("object"))
            self._list()
            return
        secret = event.get("object", {})
        metadata = secret.get("metadata", {})
        if metadata.get("resourceVersion"):
            self.resource_version = metadata["resourceVersion"]
        if event.get("type") not in ("ADDED", "MODIFIED"):
            return
        with self.condition:
            for key, value in (secret.get("data") or {}).items():
                marker = (metadata.get("namespace", ""), metadata.get("name", ""), key, value)
                self.seen.setdefault(marker, arrived)
            self.condition.notify_all()

    def wait_visible(self, markers: list[ValueKey], timeout: float) -> float | None:
        """Wait until every marker was seen; return the latest arrival time, or None."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                missing = [marker for marker in markers if marker not in self.seen]
                if not missing:
                    return max(self.seen[marker] for marker in markers)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.condition.wait(remaining)


@dataclass
class StreamResults:
    startup_seconds: float = 0.0
    startup_calls: Calls | None = None
    latencies: list[float] = field(default_factory=list)
    change_calls: list[Calls] = field(default_factory=list)
    lost_changes: int = 0
    burst: dict[str, Any] = field(default_factory=dict)
    burst_calls: Calls | None = None
    burst_secrets: list[tuple[str, str]] = field(default_factory=list)
    peak_rss_bytes: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "changes": len(self.latencies),
            "lost_changes": self.lost_changes,
            "p50_seconds": statistics.median(ordered) if ordered else None,
            "p99_seconds": percentile(ordered, 0.99) if ordered else None,
            "max_seconds": ordered[-1] if ordered else None,
            "kms_per_change": sorted({calls.kms_decrypt for calls in self.change_calls}),
            "writes_per_change": sorted({calls.kube_writes for calls in self.change_calls}),
            "secret_writes_per_change": sorted(
                {calls.secret_writes for calls in self.change_calls}
            ),
            "kube_requests_per_change": sorted(
                {calls.kube_requests for calls in self.change_calls}
            ),
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending list."""
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


class Versions:
    """The next version number of each name the benchmark changes."""

    def __init__(self) -> None:
        self.current: dict[str, int] = {}
        self.lock = threading.Lock()

    def next_entry(self, index: int) -> workload.Entry:
        name = workload.key_name(index)
        with self.lock:
            version = self.current.get(name, workload.version_count(index)) + 1
            self.current[name] = version
        return workload.Entry(name, version, f"changed-{version}-{name}")


def marker_of(entry: workload.Entry) -> ValueKey:
    namespace, secret, key = entry.name.split("/")
    encoded = base64.b64encode(entry.value.encode()).decode()
    return (namespace, secret, key, encoded)


class ServiceRun:
    """One kubestash service child and the scenarios measured against it."""

    def __init__(self, world: World, table: str, size: int, log_path: Path) -> None:
        self.world = world
        self.table = table
        self.size = size
        self._local = threading.local()
        self.log_path = log_path
        self.versions = Versions()
        self.results = StreamResults()
        self.process: subprocess.Popen[bytes] | None = None
        self.watch: SecretWatch | None = None
        self.dynamodb, self.kms = writer_clients(world)

    def start(self, extra_env: dict[str, str]) -> None:
        port = free_port()
        env = self.world.child_env(SERVICE_APP, **extra_env)
        env.update(PORT=str(port), WAIT_TIME="0", DRY_RUN="false", CRON_HOURS="1000")

        before = self.world.snapshot()
        started = time.monotonic()
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "renderer.service", "--host", "127.0.0.1"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=Path(__file__).resolve().parent.parent,
        )
        url = f"http://127.0.0.1:{port}/readyz"
        if not wait_ready(url, self.process, READY_TIMEOUT):
            raise RuntimeError(f"the service did not become ready; see {self.log_path}")
        self.results.startup_seconds = time.monotonic() - started
        self.results.startup_calls = calls_of(self.world.snapshot() - before, SERVICE_APP)

        assert self.world.kube is not None
        self.watch = SecretWatch(self.world.kube.url)
        self.watch.start()

    def measure_changes(self, count: int) -> None:
        """Change one key at a time and time each change until the watch shows it."""
        secrets = workload.secret_count(self.size)
        for number in range(count):
            index = (number * 7919 % secrets) * workload.KEYS_PER_SECRET + number % 10
            entry = self.versions.next_entry(index)
            before = self.world.snapshot()
            put_at = time.monotonic()
            workload.put_version(self.dynamodb, self.kms, self.table, entry)
            visible = self.watch.wait_visible([marker_of(entry)], VISIBLE_TIMEOUT)
            time.sleep(SETTLE_SECONDS)
            self.results.change_calls.append(calls_of(self.world.snapshot() - before, SERVICE_APP))
            if visible is None:
                self.results.lost_changes += 1
                logger.warning(
                    "change %s was not visible within %.0f s", entry.name, VISIBLE_TIMEOUT
                )
                continue
            self.results.latencies.append(visible - put_at)

    def measure_burst(self, secret_count: int, writers: int = 8) -> None:
        """Change every key of `secret_count` Secrets at once, from `writers` threads."""
        secrets = workload.secret_count(self.size)
        stride = max(1, secrets // secret_count)
        chosen = [(number * stride + stride // 2) % secrets for number in range(secret_count)]
        entries = [
            self.versions.next_entry(secret * workload.KEYS_PER_SECRET + key)
            for secret in chosen
            for key in range(workload.KEYS_PER_SECRET)
            if secret * workload.KEYS_PER_SECRET + key < self.size
        ]
        self.results.burst_secrets = [workload.secret_ref(secret) for secret in chosen]

        before = self.world.snapshot()
        started = time.monotonic()
        with ThreadPoolExecutor(writers, thread_name_prefix="writer") as pool:
            list(pool.map(self._put_with_own_clients, entries))
        written = time.monotonic()
        visible = self.watch.wait_visible(
            [marker_of(entry) for entry in entries], VISIBLE_TIMEOUT * 5
        )
        time.sleep(SETTLE_SECONDS * 3)
        self.results.burst_calls = calls_of(self.world.snapshot() - before, SERVICE_APP)
        self.results.burst = {
            "changes": len(entries),
            "secrets": len(chosen),
            "put_seconds": written - started,
            "visible_seconds": None if visible is None else visible - started,
            "drain_seconds": None if visible is None else max(0.0, visible - written),
        }

    def _put_with_own_clients(self, entry: workload.Entry) -> None:
        # boto3 resources are not thread-safe, so each writer thread makes its own.
        if not hasattr(self._local, "clients"):
            self._local.clients = writer_clients(self.world)
        dynamodb, kms = self._local.clients
        workload.put_version(dynamodb, kms, self.table, entry)

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.process is None:
            return
        self.results.peak_rss_bytes = protocol.peak_rss_bytes(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()
        if self.process.returncode != 0:
            logger.warning("the service exited with %s", self.process.returncode)
        self.process = None


def writer_clients(world: World) -> tuple[Any, Any]:
    """Return a DynamoDB resource and a KMS client whose requests count as the writer's."""
    session = world.session()
    config = Config(user_agent_appid=WRITER_APP)
    return session.resource("dynamodb", config=config), session.client("kms", config=config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
