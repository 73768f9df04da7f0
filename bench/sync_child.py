"""kubestash's full sync, cold then warm in the same process (the cache stays warm).

Run as a child of the benchmark: `python -m bench.sync_child`. Settings come from the
environment as for `kubestash sync`; DRY_RUN must be false so the Secrets are written.
"""

from __future__ import annotations

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

    for name in ("cold", "warm"):
        with protocol.phase(name) as details:
            result = syncer.full_sync(trigger="bench")
            details.update(result=result.result, counts=dict(result.counts))


if __name__ == "__main__":
    main()
