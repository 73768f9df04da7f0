"""Soak: `kubestash serve` under a stream of credstash changes while its HTTP API is polled.

    python -m tests.reliability.soak --keys 10000 --seconds 300 --output soak.json

The soak starts moto_server and the Kubernetes API test server (each a child process on
127.0.0.1), fills a credstash table and starts `python -m renderer.service`. Once the service
is ready, a writer makes changes for `--seconds`: new versions, new names and deletions, each
to a key not touched before. Meanwhile threads poll POST /render and GET /status, /metrics,
/healthz and /. Afterwards the soak checks that every change reached its Secret, that the
Secrets equal the table, that no response and no log line contains a value, and that SIGTERM
ends the service cleanly. The service's RSS is sampled from /proc throughout. The exit code
is 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import statistics
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
# The soak fails when the median RSS of the last third of the run exceeds that of the first
# third by this much. The bound is an estimate: a 10-minute soak of 10,000 keys grew by
# 2.3 MiB, and a 30-minute run of back-to-back full syncs by 23.3 MiB while the sync history
# filled (docs/reliability.md).
RSS_GROWTH_LIMIT_MIB = 32.0
SYNC_STARTED = re.compile(r"sync (\w+) started \((full|incremental), trigger (\w+)")
SYNC_SUMMARY = re.compile(r"sync (\w+) summary: (\w+) in ([0-9.]+) s")


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


def service_environ(
    store: CredstashStore, kubeconfig: Path, render_rate_limit: str
) -> dict[str, str]:
    return {
        **store.env(),
        "KUBECONFIG": str(kubeconfig),
        "DRY_RUN": "false",
        "WAIT_TIME": "1",
        "CRON_HOURS": "1000",
        "KUBESTASH_API_KEY": API_KEY,
        "RENDER_RATE_LIMIT": render_rate_limit,
        "LOG_FORMAT": "json",
    }


def seed(store: CredstashStore, cluster: Cluster, keys: int) -> dict[str, str]:
    for namespace in NAMESPACES:
        cluster.create_namespace(namespace)
    values = {name: new_value() for name in table_names(keys)}
    Sealer(store).write(values)
    return values


def start_pollers(url: str, lag: StreamLag, render_every: float) -> list[Poller]:
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    return [
        Poller(url, "GET", "/status", 1.0),
        Poller(url, "GET", "/metrics", 1.0, inspect=lag),
        Poller(url, "GET", "/healthz", 2.0),
        Poller(url, "GET", "/", 5.0),
        # Past RENDER_RATE_LIMIT the answer is 429, which is what the limit is for.
        Poller(url, "POST", "/render", render_every, headers=bearer, expected=(202, 429)),
    ]


def quiet(service: ServiceProcess) -> bool:
    syncs = service.status().get("syncs") or {}
    return syncs.get("running") is None and not syncs.get("pending_secrets")


def run(
    keys: int,
    seconds: float,
    rate: float,
    *,
    folder: Path,
    rss_interval: float,
    render_every: float = 30.0,
    render_rate_limit: str = "1 per 10 minutes",
) -> dict:
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

        environ = service_environ(store, kube.kubeconfig, render_rate_limit)
        service = ServiceProcess(environ, folder / "service.log")
        began = time.monotonic()
        wait_until(service.ready, timeout=900)
        startup = time.monotonic() - began

        load = {"rate": rate, "rss_interval": rss_interval, "render_every": render_every}
        figures = _measure(store, kube.url, service, values, seconds, load)
        figures.update(
            keys=keys,
            seeded_seconds=seeded,
            startup_seconds=startup,
            render_rate_limit=render_rate_limit,
            render_every=render_every,
            rate=rate,
        )
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
    load: dict[str, float],
) -> dict[str, Any]:
    lag = StreamLag()
    sampler = RssSampler(service.pid, load["rss_interval"])
    pollers = start_pollers(f"http://127.0.0.1:{service.port}", lag, load["render_every"])
    writer = Writer(store, list(values), load["rate"], seed=len(values))
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
        syncs=sync_figures(output),
    )


def sync_figures(output: str) -> dict[str, dict[str, Any]]:
    """Count the service's syncs by kind and result, with their durations, from its log."""
    kinds = {match[0]: match[1] for match in SYNC_STARTED.findall(output)}
    durations: dict[str, list[float]] = {}
    results: dict[str, dict[str, int]] = {}
    for sync_id, result, seconds in SYNC_SUMMARY.findall(output):
        kind = kinds.get(sync_id, "unknown")
        durations.setdefault(kind, []).append(float(seconds))
        counted = results.setdefault(kind, {})
        counted[result] = counted.get(result, 0) + 1
    return {
        kind: {
            "count": len(values),
            "results": results[kind],
            "median_seconds": statistics.median(values),
            "max_seconds": max(values),
        }
        for kind, values in durations.items()
    }


def _figures(**parts: Any) -> dict[str, Any]:
    writer, checkers, sampler = parts["writer"], parts["checkers"], parts["sampler"]
    latencies = [change.landed_after for change in checkers.landed if change.landed_after]
    polls = {}
    for poller in parts["pollers"]:
        poll = poller.poll
        polls[poll.path] = {
            "answers": len(poll.seconds),
            "codes": dict(poll.codes),
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
        "stream_lag_p50_seconds": percentile(parts["lag"].samples, 0.5),
        "stream_lag_p99_seconds": percentile(parts["lag"].samples, 0.99),
        "rss": rss,
        "rss_growth_mib": growth,
        "rss_samples": [(round(t, 1), round(v / 2**20, 1)) for t, v in sampler.samples],
        "in_step": parts["in_step"],
        "exit_code": parts["exit_code"],
        "exit_seconds": parts["exit_seconds"],
        "log_leaks": parts["log_leaks"],
        "log_errors": parts["errors"],
        "syncs": parts["syncs"],
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
        f"  stream lag p50 {figures['stream_lag_p50_seconds']:.2f} s, "
        f"p99 {figures['stream_lag_p99_seconds']:.2f} s, "
        f"max {figures['stream_lag_max_seconds']:.2f} s",
        f"  RSS MiB: first {rss.get('first_mib', 0):.1f}, min {rss.get('min_mib', 0):.1f}, "
        f"max {rss.get('max_mib', 0):.1f}, last {rss.get('last_mib', 0):.1f}, "
        f"growth {figures['rss_growth_mib']:.1f}, slope {rss.get('slope_mib_per_minute', 0):.2f}"
        "/min",
    ]
    for kind, syncs in figures["syncs"].items():
        lines.append(
            f"  {kind} syncs: {syncs['count']} {syncs['results']}, median "
            f"{syncs['median_seconds']:.2f} s, max {syncs['max_seconds']:.2f} s"
        )
    for path, poll in figures["polls"].items():
        lines.append(
            f"  {path}: {poll['answers']} answers {poll['codes']}, {poll['failures']} failed, "
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
    parser.add_argument(
        "--render-every", type=float, default=30, help="seconds between POST /render calls"
    )
    parser.add_argument(
        "--render-rate-limit",
        default="1 per 10 minutes",
        help="RENDER_RATE_LIMIT of the service (default: kubestash's own default)",
    )
    parser.add_argument("--output", type=Path, help="write every figure to this JSON file")
    parser.add_argument(
        "--workdir", type=Path, help="keep the logs and kubeconfig here (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # httpx logs every request at INFO; the pollers and checkers send thousands.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="kubestash-soak-") as temporary:
        folder = args.workdir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        figures = run(
            args.keys,
            args.seconds,
            args.rate,
            folder=folder,
            rss_interval=args.rss_interval,
            render_every=args.render_every,
            render_rate_limit=args.render_rate_limit,
        )
    print(summary(figures))
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
