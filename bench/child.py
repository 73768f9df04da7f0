"""Run one contender in a child process and measure each of its phases.

Every measured sync runs in a child of its own, so its peak RSS is its own: the child
reports VmHWM (peak RSS since its exec) after each phase. Server-side request counts are
read just before and after each phase.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.world import Calls, World, calls_of

logger = logging.getLogger(__name__)


@dataclass
class Phase:
    """One measured phase: wall time, the contender's calls and its peak RSS so far."""

    name: str
    seconds: float
    peak_rss_bytes: int
    calls: Calls
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "peak_rss_bytes": self.peak_rss_bytes,
            "calls": self.calls.to_dict(),
            "details": self.details,
        }


class ChildFailed(RuntimeError):
    """A child process exited with an error; its log has the traceback."""


def run_phases(
    world: World, argv: list[str], *, app: str, log_path: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Phase], int]:
    """Run `argv` as a child speaking bench.protocol; return its phases and its peak RSS."""
    logger.info("running %s", " ".join(argv[-4:]))
    with open(log_path, "a") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env or world.child_env(app),
            cwd=Path(__file__).resolve().parent.parent,
        )
        phases = _converse(world, child, app)
        assert child.stdin is not None
        child.stdin.close()
        child.wait()

    if child.returncode != 0:
        raise ChildFailed(f"{argv[-4:]} exited with {child.returncode}; see {log_path}")
    peak = max((phase.peak_rss_bytes for phase in phases.values()), default=0)
    return phases, peak


def _converse(world: World, child: subprocess.Popen[str], app: str) -> dict[str, Phase]:
    assert child.stdin is not None and child.stdout is not None
    phases: dict[str, Phase] = {}
    before = None
    for line in child.stdout:
        message = json.loads(line)
        if message["event"] == "ready":
            before = world.snapshot()
            child.stdin.write("go\n")
            child.stdin.flush()
            continue

        delta = world.snapshot() - before if before is not None else None
        name = message["phase"]
        phases[name] = Phase(
            name=name,
            seconds=message["seconds"],
            peak_rss_bytes=message["peak_rss_bytes"],
            calls=calls_of(delta, app) if delta else Calls({}, {}),
            details=message.get("details", {}),
        )
        # Other work on the machine slows the phase down; the load shows how busy it was.
        phases[name].details["load_average_1m"] = round(os.getloadavg()[0], 2)
        logger.info("%s %s: %.2f s, %s", app, name, phases[name].seconds, phases[name].calls)
    return phases
