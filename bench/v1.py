"""kubestash 2.0.2, the peer: a venv of its own and the command that runs it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

V1_REQUIREMENT = "kubestash==2.0.2"
# kubestash 2.0.2 does not pin boto3, and older boto3 releases ignore AWS_ENDPOINT_URL.
BOTO3_REQUIREMENT = "boto3>=1.34"
RUNNER = Path(__file__).with_name("v1_runner.py")


def default_venv() -> Path:
    return Path(__file__).resolve().parent / ".venv-v1"


def ensure_venv(venv: Path) -> Path:
    """Create the venv with kubestash 2.0.2 unless it is there already; return its python."""
    python = venv / "bin" / "python"
    if python.exists() and _has_v1(python):
        return python
    logger.info("creating %s with %s", venv, V1_REQUIREMENT)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            V1_REQUIREMENT,
            BOTO3_REQUIREMENT,
        ],
        check=True,
    )
    return python


def _has_v1(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('kubestash'))"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    return probe.returncode == 0 and probe.stdout.strip() == V1_REQUIREMENT.split("==")[1]


def command(python: Path, phase: str, table: str) -> list[str]:
    return [str(python), str(RUNNER), phase, table]
