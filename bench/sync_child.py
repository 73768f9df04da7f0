"""kubestash's full sync, cold then warm in the same process (the cache stays warm).

Run as a child of the benchmark: `python -m bench.sync_child`. Settings come from the
environment as for `kubestash sync`; DRY_RUN must be false so the Secrets are written.
With BENCH_PROFILE=PREFIX each sync runs under cProfile (only the calling thread is
profiled) and tracemalloc; the stats go to PREFIX-cold.pstats and PREFIX-warm.pstats, and
the memory still allocated after each sync to PREFIX-cold-memory.txt and so on.
"""

from __future__ import annotations

import cProfile
import logging
import os
import tracemalloc

from bench import protocol
from renderer.settings import Settings
from renderer.sync import Syncer


def main() -> None:
    protocol.take_stdout()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    settings = Settings.load(os.environ)
    syncer = Syncer(settings)

    profile_prefix = os.environ.get("BENCH_PROFILE")
    if profile_prefix:
        tracemalloc.start(10)
    for name in ("cold", "warm"):
        profiler = cProfile.Profile() if profile_prefix else None
        with protocol.phase(name) as details:
            if profiler:
                profiler.enable()
            result = syncer.full_sync(trigger="bench")
            if profiler:
                profiler.disable()
            details.update(result=result.result, counts=dict(result.counts))
        if profiler:
            profiler.dump_stats(f"{profile_prefix}-{name}.pstats")
            write_memory_report(f"{profile_prefix}-{name}-memory.txt")


def write_memory_report(path: str) -> None:
    """Write the traced peak and the allocation sites of the memory still held."""
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 2**20:.1f} MiB, traced peak {peak / 2**20:.1f} MiB"]
    for stat in tracemalloc.take_snapshot().statistics("lineno")[:25]:
        lines.append(f"{stat.size / 2**20:8.1f} MiB {stat.count:9d} blocks  {stat.traceback}")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
