"""SIGTERM ends a service process cleanly within 10 seconds, even during a sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from renderer.kube import KubeError
from renderer.testing.aws import free_port

from .conftest import Stack
from .harness import wait_until

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases/kubestash"


class ServiceProcess:
    def __init__(self, stack: Stack, name: str, log: Path):
        self.port = free_port()
        environ = {
            **os.environ,
            **stack.environ,
            "PORT": str(self.port),
            "LEADER_ELECTION": "true",
            "POD_NAME": name,
            "POD_NAMESPACE": "default",
            "HTTP_TIMEOUT": "30",
        }
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "renderer.service", "--host", "127.0.0.1"],
            env=environ,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def status(self) -> dict | None:
        try:
            return self.http.get("/status").json()
        except httpx.TransportError:
            return None

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def processes(stack: Stack, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        process.stop()


def holder(stack: Stack) -> str | None:
    return stack.kube.request("get", "GET", LEASE_PATH)["spec"].get("holderIdentity")


def test_sigterm_during_sync_exits_within_10_seconds(
    stack: Stack, processes: list[ServiceProcess], tmp_path: Path
) -> None:
    stack.create_namespace("team")
    stack.table.put("team/app/KEY", "1")
    stack.kubeapi.faults.add({"action": "hang", "verb": "patch", "path": "/secrets/"})
    service = ServiceProcess(stack, "only", tmp_path / "service.log")
    processes.append(service)
    wait_until(lambda: ((service.status() or {}).get("syncs") or {}).get("running"))
    assert holder(stack) == "only"

    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=15)

    assert time.monotonic() - began < 10
    assert code == 0
    assert holder(stack) is None
    output = service.log.read_text()
    assert "received SIGTERM" in output
    assert "released Lease default/kubestash" in output


def test_sigterm_on_leader_hands_over(
    stack: Stack, processes: list[ServiceProcess], tmp_path: Path
) -> None:
    stack.create_namespace("team")
    first = ServiceProcess(stack, "first", tmp_path / "first.log")
    processes.append(first)
    wait_until(lambda: holder_or_none(stack) == "first")
    second = ServiceProcess(stack, "second", tmp_path / "second.log")
    processes.append(second)
    wait_until(lambda: (second.status() or {}).get("ready"))

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0

    wait_until(lambda: holder_or_none(stack) == "second", timeout=8)
    stack.table.put("team/app/KEY", "from-second")
    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("KEY") == "from-second")


def holder_or_none(stack: Stack) -> str | None:
    try:
        return holder(stack)
    except KubeError:
        return None
