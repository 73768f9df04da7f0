"""Load: a short soak in every test run, the long one on request.

The short run has 1,000 keys and 10 seconds of changes. `python -m tests.reliability.soak`
(or KUBESTASH_SOAK=1 with `-m slow`) runs the long one, whose figures are in
docs/reliability.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .soak import RSS_GROWTH_LIMIT_MIB, run, summary


def assert_held(figures: dict) -> None:
    assert figures["writer_errors"] == []
    assert figures["changes"] > 0
    assert figures["missed"] == []
    assert figures["landed"] == figures["changes"]
    assert figures["in_step"] is True
    for path, poll in figures["polls"].items():
        assert poll["answers"] > 0, path
        assert poll["failures"] == 0, path
        assert poll["leaks"] == 0, path
    assert figures["log_leaks"] == 0
    assert figures["exit_code"] == 0
    assert figures["rss_growth_mib"] < RSS_GROWTH_LIMIT_MIB


def test_short_soak_holds(tmp_path: Path) -> None:
    figures = run(1000, 10, 5, folder=tmp_path, rss_interval=0.5)
    print(summary(figures))
    assert_held(figures)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("KUBESTASH_SOAK"), reason="set KUBESTASH_SOAK=1 to run")
def test_soak_holds(tmp_path: Path) -> None:
    figures = run(10_000, 300, 5, folder=tmp_path, rss_interval=5)
    print(summary(figures))
    assert_held(figures)
