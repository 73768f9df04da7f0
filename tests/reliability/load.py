"""The moving parts of the soak: a writer of credstash changes, checkers that wait for each
change to reach its Secret, HTTP pollers, and an RSS sampler. Each runs on its own thread
and records what it saw; `soak` starts them, stops them and turns the records into figures.
"""

from __future__ import annotations

import queue
import random
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from renderer.testing.aws import CredstashStore

from .processes import rss_bytes
from .support import Cluster, token

# Every soak value starts with this prefix, so one regular expression finds any of them in a
# log or a response. The base64 form of a value starts with "c29hay".
VALUE_PREFIX = "soak"
LEAKED = re.compile(r"soak-[0-9a-f]{32}|c29hay0[A-Za-z0-9+/]{30}")
LAG_LINE = re.compile(r"^kubestash_stream_lag_seconds\{[^}]*\} (\S+)$", re.MULTILINE)


def new_value() -> str:
    return token(VALUE_PREFIX)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; 0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Change:
    """One credstash write: a new value for `name`, or its deletion when `value` is None."""

    name: str
    value: str | None
    written_at: float
    landed_after: float | None = None


class Writer(threading.Thread):
    """Writes `rate` changes per second with the credstash library, each to a key not yet
    changed in this run: mostly new versions, some new names, some deletions."""

    def __init__(self, store: CredstashStore, names: list[str], rate: float, seed: int) -> None:
        super().__init__(name="soak-writer", daemon=True)
        self.store = store
        self.rate = rate
        self.random = random.Random(seed)
        self.untouched = list(names)
        self.random.shuffle(self.untouched)
        self.changes: queue.Queue[Change] = queue.Queue()
        self.done: list[Change] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.added = 0

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stopping.is_set() and self.untouched:
            try:
                change = self._one()
            except Exception as error:  # noqa: BLE001 - recorded and reported as a failure
                self.errors.append(f"{type(error).__name__}: {error}")
            else:
                self.done.append(change)
                self.changes.put(change)
            next_at += interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> Change:
        roll = self.random.random()
        name = self.untouched.pop()
        if roll < 0.05:
            self.store.delete(name)
            return Change(name, None, time.monotonic())
        if roll < 0.10:
            # A new key in the same Secret as an existing name.
            self.added += 1
            name = name.rsplit("/", 1)[0] + f"/ADDED_{self.added:05d}"
        value = new_value()
        self.store.put(name, value)
        return Change(name, value, time.monotonic())


class Checkers:
    """Threads that poll each change's Secret until the change is there."""

    def __init__(self, cluster_url: str, changes: queue.Queue[Change], threads: int = 6) -> None:
        self.changes = changes
        self.landed: list[Change] = []
        self.missed: list[Change] = []
        self.timeout = 120.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(cluster_url,), daemon=True)
            for _ in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        """Check every change still queued, then stop."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()

    def _run(self, cluster_url: str) -> None:
        cluster = Cluster(cluster_url)
        try:
            while True:
                try:
                    change = self.changes.get(timeout=0.2)
                except queue.Empty:
                    if self._stopping.is_set():
                        return
                    continue
                self._check(cluster, change)
        finally:
            cluster.close()

    def _check(self, cluster: Cluster, change: Change) -> None:
        namespace, secret, key = change.name.split("/")
        deadline = change.written_at + self.timeout
        while time.monotonic() < deadline:
            data = cluster.data(namespace, secret) or {}
            if data.get(key) == change.value:
                change.landed_after = time.monotonic() - change.written_at
                with self._lock:
                    self.landed.append(change)
                return
            time.sleep(0.1)
        with self._lock:
            self.missed.append(change)


@dataclass
class Poll:
    """Response times and failures of one polled endpoint."""

    path: str
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)
    leaks: int = 0


class Poller(threading.Thread):
    """Calls one endpoint every `interval` seconds and times each response."""

    def __init__(
        self,
        base_url: str,
        method: str,
        path: str,
        interval: float,
        *,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        inspect: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name=f"soak-poll-{path}", daemon=True)
        self.http = httpx.Client(base_url=base_url, timeout=60, headers=headers or {})
        self.method = method
        self.interval = interval
        self.expected = expected
        self.inspect = inspect
        self.poll = Poll(f"{method} {path}")
        self.path = path
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                answer = self.http.request(self.method, self.path)
            except httpx.HTTPError as error:
                self.poll.failures.append(type(error).__name__)
            else:
                self.poll.seconds.append(time.monotonic() - started)
                codes = self.poll.codes
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
                if answer.status_code not in self.expected:
                    self.poll.failures.append(str(answer.status_code))
                if LEAKED.search(answer.text):
                    self.poll.leaks += 1
                if self.inspect is not None:
                    self.inspect(answer.text)
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        self.http.close()


class StreamLag:
    """kubestash_stream_lag_seconds as each /metrics response reported it (largest shard)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def __call__(self, text: str) -> None:
        lags = [float(match.group(1)) for match in LAG_LINE.finditer(text)]
        if lags:
            self.samples.append(max(lags))

    @property
    def max_seconds(self) -> float:
        return max(self.samples, default=0.0)


class RssSampler(threading.Thread):
    """Reads the RSS of one process every `interval` seconds."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.samples.append((time.monotonic() - self.began, rss_bytes(self.pid)))
            except (OSError, ValueError):
                return
            self.stopping.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        values = [rss for _, rss in self.samples]
        if not values:
            return {}
        third = max(1, len(values) // 3)
        return {
            "samples": len(values),
            "first_mib": values[0] / 2**20,
            "min_mib": min(values) / 2**20,
            "max_mib": max(values) / 2**20,
            "last_mib": values[-1] / 2**20,
            "first_third_median_mib": statistics.median(values[:third]) / 2**20,
            "last_third_median_mib": statistics.median(values[-third:]) / 2**20,
            "slope_mib_per_minute": _slope(self.samples) * 60 / 2**20,
        }


def _slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, in bytes per second."""
    if len(samples) < 2:
        return 0.0
    times = [t for t, _ in samples]
    values = [v for _, v in samples]
    mean_t = statistics.fmean(times)
    mean_v = statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread
