"""Soak: `kubestash serve` under a stream of credstash changes while its HTTP API is polled.

    python -m tests.reliability.soak --keys 10000 --seconds 300 --output soak.json

Starts moto_server and the Kubernetes API test server (each a child process on 127.0.0.1),
fills a credstash table, starts `python -m renderer.service` and, once it is ready, writes
changes for `--seconds` (new versions, new names, deletions, each to a key not yet touched)
while threads poll POST /render, GET /status, /metrics, /healthz and /. It then checks that
every change reached its Secret, that the Secrets equal the table, that no answer and no log
line holds a value, and that SIGTERM ends the service cleanly. The service's RSS is sampled
from /proc throughout. Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from renderer.testing.aws import CredstashStore, MotoServer, free_port

from .awsfaults import Sealer
from .load import LEAKED, Checkers, Poller, RssSampler, StreamLag, Writer, new_value, percentile
from .processes import REPO, ServiceProcess
from .support import Cluster, expected_secrets, wait_until

logger = logging.getLogger("soak")

API_KEY = "soak-api-key-not-a-value"
NAMESPACES = [f"load-{number:02d}" for number in range(20)]
KEYS_PER_SECRET = 10
# Past this many keys, 2,000 of them go into one Secret, to hold thousands of keys in one.
BULK_FROM = 5000
BULK_KEYS = 2000
# RSS may differ between the first and last third of the run by this much before the soak
# fails: allocator noise on a flat process stays within a few MiB.
RSS_GROWTH_LIMIT_MIB = 32.0


def table_names(keys: int) -> list[str]:
    names = []
    bulk = BULK_KEYS if keys >= BULK_FROM else 0
    for number in range(bulk):
        names.append(f"{NAMESPACES[0]}/bulk/KEY_{number:05d}")
    for number in range(keys - bulk):
        secret = number // KEYS_PER_SECRET
        namespace = NAMESPACES[secret % len(NAMESPACES)]
        names.append(f"{namespace}/app-{secret:05d}/KEY_{number % KEYS_PER_SECRET}")
    return names


class KubeProcess:
    """The Kubernetes API test server as a child process."""

    def __init__(self, folder: Path) -> None:
        self.kubeconfig = folder / "kubeconfig"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "renderer.testing.kubeapi",
                "--port",
                str(free_port()),
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def service_environ(store: CredstashStore, kubeconfig: Path) -> dict[str, str]:
    return {
        **store.env(),
        "KUBECONFIG": str(kubeconfig),
        "DRY_RUN": "false",
        "WAIT_TIME": "1",
        "CRON_HOURS": "1000",
        "KUBESTASH_API_KEY": API_KEY,
        "RENDER_RATE_LIMIT": "1000 per 1 minute",
        "LOG_FORMAT": "json",
    }


def seed(store: CredstashStore, cluster: Cluster, keys: int) -> dict[str, str]:
    for namespace in NAMESPACES:
        cluster.create_namespace(namespace)
    values = {name: new_value() for name in table_names(keys)}
    Sealer(store).write(values)
    return values


def start_pollers(url: str, lag: StreamLag) -> list[Poller]:
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    return [
        Poller(url, "GET", "/status", 1.0),
        Poller(url, "GET", "/metrics", 1.0, inspect=lag),
        Poller(url, "GET", "/healthz", 2.0),
        Poller(url, "GET", "/", 5.0),
        Poller(url, "POST", "/render", 30.0, headers=bearer, expected=(202,)),
    ]


def quiet(service: ServiceProcess) -> bool:
    syncs = service.status().get("syncs") or {}
    return syncs.get("running") is None and not syncs.get("pending_secrets")


def run(keys: int, seconds: float, rate: float, *, folder: Path, rss_interval: float) -> dict:
    """Run one soak and return its figures; see the module docstring."""
    moto = MotoServer().start()
    kube = KubeProcess(folder)
    cluster = Cluster(kube.url)
    service: ServiceProcess | None = None
    try:
        store = CredstashStore(moto).create()
        began = time.monotonic()
        values = seed(store, cluster, keys)
        seeded = time.monotonic() - began

        service = ServiceProcess(service_environ(store, kube.kubeconfig), folder / "service.log")
        began = time.monotonic()
        wait_until(service.ready, timeout=900)
        startup = time.monotonic() - began

        figures = _measure(store, kube.url, service, values, seconds, rate, rss_interval)
        figures.update(keys=keys, seeded_seconds=seeded, startup_seconds=startup)
        return figures
    finally:
        if service is not None:
            service.stop()
        cluster.close()
        kube.stop()
        moto.stop()


def _measure(
    store: CredstashStore,
    cluster_url: str,
    service: ServiceProcess,
    values: dict[str, str],
    seconds: float,
    rate: float,
    rss_interval: float,
) -> dict[str, Any]:
    lag = StreamLag()
    sampler = RssSampler(service.pid, rss_interval)
    pollers = start_pollers(f"http://127.0.0.1:{service.port}", lag)
    writer = Writer(store, list(values), rate, seed=len(values))
    checkers = Checkers(cluster_url, writer.changes)
    for worker in (sampler, *pollers, writer):
        worker.start()
    checkers.start()

    time.sleep(seconds)
    writer.stopping.set()
    writer.join()
    checkers.finish()
    wait_until(lambda: quiet(service), timeout=300)
    for poller in pollers:
        poller.stopping.set()
        poller.join()
    sampler.stopping.set()
    sampler.join()

    for change in writer.done:
        if change.value is None:
            values.pop(change.name, None)
        else:
            values[change.name] = change.value
    cluster = Cluster(cluster_url)
    in_step = cluster.managed() == expected_secrets(values)
    cluster.close()

    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    exit_code = service.process.wait(timeout=30)
    output = service.output()
    return _figures(
        writer=writer,
        checkers=checkers,
        pollers=pollers,
        lag=lag,
        sampler=sampler,
        values=values,
        seconds=seconds,
        in_step=in_step,
        exit_code=exit_code,
        exit_seconds=time.monotonic() - began,
        log_leaks=len(LEAKED.findall(output)),
        errors=sum(1 for line in output.splitlines() if '"level": "ERROR"' in line),
    )


def _figures(**parts: Any) -> dict[str, Any]:
    writer, checkers, sampler = parts["writer"], parts["checkers"], parts["sampler"]
    latencies = [change.landed_after for change in checkers.landed if change.landed_after]
    polls = {}
    for poller in parts["pollers"]:
        poll = poller.poll
        polls[poll.path] = {
            "answers": len(poll.seconds),
            "failures": len(poll.failures),
            "p50_seconds": percentile(poll.seconds, 0.5),
            "max_seconds": max(poll.seconds, default=0.0),
            "leaks": poll.leaks,
        }
    rss = sampler.summary()
    growth = rss.get("last_third_median_mib", 0.0) - rss.get("first_third_median_mib", 0.0)
    figures = {
        "seconds": parts["seconds"],
        "secrets": len(expected_secrets(parts["values"])),
        "changes": len(writer.done),
        "deletions": sum(1 for change in writer.done if change.value is None),
        "writer_errors": writer.errors,
        "landed": len(checkers.landed),
        "missed": [change.name for change in checkers.missed],
        "landing_p50_seconds": percentile(latencies, 0.5),
        "landing_p99_seconds": percentile(latencies, 0.99),
        "landing_max_seconds": max(latencies, default=0.0),
        "polls": polls,
        "stream_lag_max_seconds": parts["lag"].max_seconds,
        "rss": rss,
        "rss_growth_mib": growth,
        "rss_samples": [(round(t, 1), round(v / 2**20, 1)) for t, v in sampler.samples],
        "in_step": parts["in_step"],
        "exit_code": parts["exit_code"],
        "exit_seconds": parts["exit_seconds"],
        "log_leaks": parts["log_leaks"],
        "log_errors": parts["errors"],
    }
    figures["passed"] = (
        not figures["missed"]
        and not figures["writer_errors"]
        and all(p["failures"] == 0 and p["leaks"] == 0 for p in polls.values())
        and figures["in_step"]
        and figures["exit_code"] == 0
        and figures["log_leaks"] == 0
        and growth < RSS_GROWTH_LIMIT_MIB
    )
    return figures


def summary(figures: dict[str, Any]) -> str:
    """A few lines for people; the JSON output has every figure."""
    rss = figures["rss"]
    lines = [
        f"soak: {figures['keys']} keys in {figures['secrets']} Secrets, "
        f"{figures['seconds']:.0f} s, {'passed' if figures['passed'] else 'FAILED'}",
        f"  start-up sync until ready: {figures['startup_seconds']:.1f} s",
        f"  changes: {figures['changes']} written ({figures['deletions']} deletions), "
        f"{figures['landed']} landed, {len(figures['missed'])} missed; landing p50 "
        f"{figures['landing_p50_seconds']:.2f} s, p99 {figures['landing_p99_seconds']:.2f} s, "
        f"max {figures['landing_max_seconds']:.2f} s",
        f"  stream lag max {figures['stream_lag_max_seconds']:.2f} s",
        f"  RSS MiB: first {rss.get('first_mib', 0):.1f}, min {rss.get('min_mib', 0):.1f}, "
        f"max {rss.get('max_mib', 0):.1f}, last {rss.get('last_mib', 0):.1f}, "
        f"growth {figures['rss_growth_mib']:.1f}, slope {rss.get('slope_mib_per_minute', 0):.2f}"
        "/min",
    ]
    for path, poll in figures["polls"].items():
        lines.append(
            f"  {path}: {poll['answers']} answers, {poll['failures']} failed, "
            f"p50 {poll['p50_seconds'] * 1000:.0f} ms, max {poll['max_seconds'] * 1000:.0f} ms"
        )
    lines.append(
        f"  Secrets equal the table: {figures['in_step']}; SIGTERM exit {figures['exit_code']} "
        f"in {figures['exit_seconds']:.1f} s; values in the log: {figures['log_leaks']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000, help="keys in the table")
    parser.add_argument("--seconds", type=float, default=300, help="length of the change stream")
    parser.add_argument("--rate", type=float, default=5, help="credstash changes per second")
    parser.add_argument("--rss-interval", type=float, default=5, help="seconds between samples")
    parser.add_argument("--output", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    with tempfile.TemporaryDirectory(prefix="kubestash-soak-") as folder:
        figures = run(
            args.keys, args.seconds, args.rate, folder=Path(folder), rss_interval=args.rss_interval
        )
    print(summary(figures))
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
