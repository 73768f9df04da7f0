"""`kubestash demo`: the stand-ins start, the seeded table syncs, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read the demo's stdout until a line contains `marker`; return everything read."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed within {timeout} s; output: {''.join(seen)}")


def _wait_for(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready within {timeout} s")
        time.sleep(0.2)


def test_demo_serves_until_interrupted(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KUBESTASH_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "renderer", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        intro = _read_until(process, "status page http://127.0.0.1:", timeout=120)
        base = re.search(r"status page (http://127\.0\.0\.1:\d+)/", intro).group(1)
        kubeconfig = re.search(r"kubectl --kubeconfig (\S+) get secrets", intro).group(1)
        render_key = re.search(r"Authorization: Bearer (\S+)'", intro).group(1)

        _wait_for(f"{base}/readyz", timeout=60)
        listed = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "secrets", "-A", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rendered = httpx.post(
            f"{base}/render?wait=true",
            headers={"Authorization": f"Bearer {render_key}"},
            timeout=60,
        )
        page = httpx.get(f"{base}/", timeout=10)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)

    assert "secret/app-config" in listed.stdout
    assert "secret/stripe" in listed.stdout
    assert rendered.status_code == 200
    assert rendered.json()["trigger"] == "render"
    assert page.status_code == 200
    assert "second-password" not in page.text
    assert code == 0
