"""The line protocol between the benchmark and a child process that runs measured phases.

Before each phase the child writes `{"event": "ready", "phase": NAME}` on its standard
output and waits for one line on standard input, so the parent can read the request
counters of the servers first. After the phase it writes `{"event": "done", ...}` with the
phase's wall time and the child's peak RSS so far. Only the standard library is used,
because kubestash 2.0.2's runner imports this module from a venv of its own.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

_channel: TextIO = sys.stdout


def take_stdout() -> None:
    """Keep the real standard output for the protocol and send print() to stderr."""
    global _channel
    _channel = sys.stdout
    sys.stdout = sys.stderr


def send(message: dict[str, Any]) -> None:
    _channel.write(json.dumps(message) + "\n")
    _channel.flush()


def peak_rss_bytes(pid: int | str = "self") -> int:
    """Return the peak RSS of a process since its last exec.

    Linux keeps ru_maxrss across execve, and a child started by fork or vfork inherits
    the parent's high-water mark with it, so getrusage would report the benchmark's own
    RSS for every child. VmHWM in /proc belongs to the process's current memory map.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Outside Linux: ru_maxrss (kibibytes on most systems) for this process.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def phase(name: str) -> Iterator[dict[str, Any]]:
    """Run one measured phase; values put in the yielded dict are sent with the result."""
    send({"event": "ready", "phase": name})
    sys.stdin.readline()
    details: dict[str, Any] = {}
    started = time.monotonic()
    yield details
    seconds = time.monotonic() - started
    send(
        {
            "event": "done",
            "phase": name,
            "seconds": seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "details": details,
        }
    )
