"""`kubestash demo --once`: the stand-ins start, the seeded table syncs, everything stops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_once_syncs_seeded_table(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")

    completed = subprocess.run(
        [sys.executable, "-m", "renderer", "demo", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )

    assert completed.returncode == 0, completed.stderr
    assert "kubectl --kubeconfig" in completed.stdout
    assert "3 created" in completed.stdout
    assert "absent/app: skipped" in completed.stdout
    assert "second-password" not in completed.stdout + completed.stderr
