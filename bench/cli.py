"""`python -m bench`: build the world on 127.0.0.1, run every size, write the results."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report, v1
from bench.scenarios import Options, run_size
from bench.world import World

logger = logging.getLogger("bench")

DEFAULT_SIZES = "1000,10000,100000"
PACKAGES = ("boto3", "credstash", "kubernetes", "moto")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="comma-separated table sizes in keys"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder for RESULTS.md, results.json and chart.png (default: this folder)",
    )
    parser.add_argument("--changes", type=int, default=60, help="single stream changes to time")
    parser.add_argument(
        "--burst-secrets", type=int, default=100, help="Secrets changed at once (10 keys each)"
    )
    parser.add_argument("--no-v1", action="store_true", help="leave out kubestash 2.0.2")
    parser.add_argument("--v1-venv", type=Path, default=v1.default_venv(), help="venv for 2.0.2")
    parser.add_argument(
        "--v1-max-size",
        type=int,
        default=10_000,
        help="largest size at which 2.0.2 runs (it sends one Query per name, and each "
        "Query costs moto time in proportion to the table size)",
    )
    parser.add_argument(
        "--stream-max-size",
        type=int,
        default=10_000,
        help="largest size at which the service and stream scenarios run",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip chart.png (no matplotlib)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="write cProfile stats of kubestash's syncs into the workdir (slows them down)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="only write RESULTS.md and chart.png again from this results.json",
    )
    parser.add_argument("--workdir", type=Path, help="folder for logs (default: a temporary one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("botocore", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if args.from_json:
        run = json.loads(args.from_json.read_text())
        report.write_all(run, args.output, chart=not args.no_chart)
        return 0

    sizes = sorted(int(size) for size in args.sizes.split(","))
    options = Options(
        changes=args.changes,
        burst_secrets=args.burst_secrets,
        v1_max_size=args.v1_max_size,
        stream_max_size=args.stream_max_size,
        profile=args.profile,
    )
    if not args.no_v1:
        options.v1_python = v1.ensure_venv(args.v1_venv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubestash-bench-"))
    logger.info("logs in %s", workdir)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.monotonic()
    load_before = os.getloadavg()
    commit_before = git_commit()
    world = World(workdir)
    world.start()
    try:
        results = []
        for size in sizes:
            logger.info("size %d", size)
            results.append(run_size(world, size, options, smallest=size == sizes[0]))
    finally:
        world.stop()

    run = {
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started_at": started_at,
        "seconds": time.monotonic() - started,
        "machine": machine(),
        # Other processes on the machine slow every contender; the load shows how much.
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "versions": versions(),
        "commit": {"start": commit_before, "end": git_commit()},
        "options": {key: str(value) for key, value in vars(options).items()},
        "sizes": [vars(result) for result in results],
    }
    report.write_all(run, args.output, chart=not args.no_chart)
    logger.info("results written to %s", args.output / "RESULTS.md")
    return 0


def machine() -> dict[str, object]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str:
    """Return the checked-out commit, with "+changes" when the work tree differs from it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if dirty else head or "unknown"


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found
