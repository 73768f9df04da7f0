"""The scenarios of one table size, in the order that lets them share one filled table.

1. Fill the table with the valid and invalid names.
2. kubestash 2.0.2 `pushall`, cold (no Secrets) then warm (all Secrets in place). It runs
   before the ignored names are written because it stops with a ValueError on them.
3. Write the ignored names; at the smallest size, run 2.0.2 once more to record that failure.
4. The floor, cold then warm; kubestash's full sync, cold then warm in one process.
5. The service: start-up sync, single changes through the stream, a burst, and the floor of
   the burst.

The Kubernetes test server is emptied before each cold run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import child, v1, workload
from bench.stream import ServiceRun
from bench.world import World
from renderer.settings import Settings
from renderer.source import CredstashTable

logger = logging.getLogger(__name__)


@dataclass
class Options:
    """Scenario selection and concurrency; the defaults run the full benchmark."""

    changes: int = 60
    burst_secrets: int = 100
    v1_python: Path | None = None
    v1_max_size: int = 10_000
    stream_max_size: int = 10_000
    decrypt_workers: int = 16
    apply_workers: int = 8
    profile: bool = False


@dataclass
class SizeResult:
    """Every measurement of one table size, as plain data for results.json."""

    size: int
    items: int
    secrets: int
    fill_seconds: float = 0.0
    segments: int = 1
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, contender: str, phases: dict[str, child.Phase], peak: int) -> None:
        for name, measured in phases.items():
            entry = measured.to_dict()
            entry["process_peak_rss_bytes"] = peak
            self.phases[f"{contender} {name}"] = entry


def run_size(world: World, size: int, options: Options, *, smallest: bool) -> SizeResult:
    """Run every scenario on a fresh table of `size` keys."""
    world.start_moto()
    table = f"credential-store-{size}"
    session = world.session()
    workload.create_table(session, table)
    items = list(workload.entries(size)) + workload.extra_entries(workload.INVALID_NAMES)
    result = SizeResult(size, len(items), workload.secret_count(size))
    result.fill_seconds = workload.fill(session, table, items)

    env = kubestash_env(table, options)
    settings = Settings.load({**os.environ, **env})
    result.segments = CredstashTable(settings, session).segment_count()
    logs = world.workdir / f"size-{size}"
    logs.mkdir(exist_ok=True)

    if options.v1_python and size <= options.v1_max_size:
        run_v1(world, result, table, options, logs)
    elif options.v1_python:
        result.notes.append(
            f"kubestash 2.0.2 not run above {options.v1_max_size:,} keys: it sends one Query "
            "per name, and moto sorts the whole table for every Query"
        )

    extra = workload.extra_entries(workload.IGNORED_NAMES)
    result.fill_seconds += workload.fill(session, table, extra)
    result.items += len(extra)
    if options.v1_python and smallest:
        record_v1_failure(world, result, table, options, logs)

    run_floor(world, result, table, options, logs)
    world.reset_kube()
    phases, peak = child.run_phases(
        world,
        [sys.executable, "-m", "bench.sync_child"],
        app="kubestash",
        log_path=logs / "kubestash.log",
        env=world.child_env("kubestash", **env, **profile_env(options, logs)),
    )
    result.record("kubestash", phases, peak)

    if size <= options.stream_max_size:
        run_service(world, result, table, options, logs, env)
    else:
        result.notes.append(
            f"service and stream scenarios not run above {options.stream_max_size:,} keys: "
            "the service's start-up sync would decrypt the whole table once more"
        )
    world.stop_moto()
    return result


def profile_env(options: Options, logs: Path) -> dict[str, str]:
    if not options.profile:
        return {}
    return {"BENCH_PROFILE": str(logs / "kubestash")}


def kubestash_env(table: str, options: Options) -> dict[str, str]:
    return {
        "DDB_TABLE": table,
        "DRY_RUN": "false",
        "STREAM_ENABLED": "true",
        "DECRYPT_WORKERS": str(options.decrypt_workers),
        "APPLY_WORKERS": str(options.apply_workers),
        "LOG_FORMAT": "text",
    }


def run_v1(world: World, result: SizeResult, table: str, options: Options, logs: Path) -> None:
    assert options.v1_python is not None
    world.reset_kube()
    for name in ("cold", "warm"):
        phases, peak = child.run_phases(
            world,
            v1.command(options.v1_python, name, table),
            app="v1",
            log_path=logs / "v1.log",
        )
        result.record("v1", phases, peak)


def record_v1_failure(
    world: World, result: SizeResult, table: str, options: Options, logs: Path
) -> None:
    """Run 2.0.2 on the table with ignored names and keep its exit code and error."""
    assert options.v1_python is not None
    phases, peak = child.run_phases(
        world,
        v1.command(options.v1_python, "ignored-names", table),
        app="v1",
        log_path=logs / "v1.log",
    )
    result.record("v1", phases, peak)


def run_floor(world: World, result: SizeResult, table: str, options: Options, logs: Path) -> None:
    world.reset_kube()
    phases, peak = child.run_phases(
        world,
        floor_command(table, result.segments, options, "cold,warm"),
        app="floor",
        log_path=logs / "floor.log",
    )
    result.record("floor", phases, peak)


def floor_command(table: str, segments: int, options: Options, phases: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.floor",
        "--table",
        table,
        "--segments",
        str(segments),
        "--decrypt-workers",
        str(options.decrypt_workers),
        "--apply-workers",
        str(options.apply_workers),
        "--phases",
        phases,
    ]


def run_service(
    world: World,
    result: SizeResult,
    table: str,
    options: Options,
    logs: Path,
    env: dict[str, str],
) -> None:
    service = ServiceRun(world, table, result.size, logs / "service.log")
    try:
        service.start(env)
        service.measure_changes(options.changes)
        service.measure_burst(min(options.burst_secrets, result.secrets))
    finally:
        service.stop()

    measured = service.results
    result.stream = {
        "startup_seconds": measured.startup_seconds,
        "startup_calls": measured.startup_calls.to_dict() if measured.startup_calls else None,
        "changes": measured.summary(),
        "latencies": measured.latencies,
        "change_calls": [calls.to_dict() for calls in measured.change_calls],
        "burst": measured.burst,
        "burst_calls": measured.burst_calls.to_dict() if measured.burst_calls else None,
        "peak_rss_bytes": measured.peak_rss_bytes,
    }

    pairs = world.workdir / f"burst-{result.size}.json"
    pairs.write_text(json.dumps(measured.burst_secrets))
    command = floor_command(table, result.segments, options, "burst")
    command += ["--burst-secrets", str(pairs)]
    phases, peak = child.run_phases(world, command, app="floor", log_path=logs / "floor.log")
    result.record("floor", phases, peak)
