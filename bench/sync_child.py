"""kubestash's full sync, cold then warm in the same process (the cache stays warm).

Run as a child of the benchmark: `python -m bench.sync_child`. Settings come from the
environment as for `kubestash sync`; DRY_RUN must be false so the Secrets are written.
With BENCH_PROFILE=PREFIX each sync runs under cProfile (only the calling thread is
profiled) and its stats go to PREFIX-cold.pstats and PREFIX-warm.pstats.
"""

from __future__ import annotations

import cProfile
import logging
import os

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


if __name__ == "__main__":
    main()
