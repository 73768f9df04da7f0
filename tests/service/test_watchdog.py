"""A sync stuck on a hanging Kubernetes API is abandoned, reported, and followed by a good one."""

from __future__ import annotations

import logging

import pytest

from renderer.scheduler import ScheduleTiming

from .conftest import API_KEY, Stack
from .harness import RunningService, wait_until

HANG_SECRET_WRITES = {"action": "hang", "verb": "patch", "path": "/secrets/"}


def metric(running: RunningService, name: str) -> str:
    lines = running.http.get("/metrics").text.splitlines()
    return next(line.split(" ")[1] for line in lines if line.startswith(name + " "))


@pytest.fixture
def two_secrets(stack: Stack) -> Stack:
    stack.create_namespace("team")
    stack.table.put("team/first/KEY", "1")
    stack.table.put("team/second/KEY", "2")
    return stack


def test_hanging_api_times_out_sync(two_secrets: Stack, caplog: pytest.LogCaptureFixture) -> None:
    stack = two_secrets
    caplog.set_level(logging.ERROR, logger="renderer.scheduler")
    stack.kubeapi.faults.add(HANG_SECRET_WRITES)
    variables = {"CREDSTASH_SYNC_TIMEOUT_SECS": "1", "HTTP_TIMEOUT": "0.5", "APPLY_WORKERS": "1"}
    running = stack.service(variables=variables)

    [entry] = wait_until(lambda: running.history, timeout=20)
    assert entry["result"] == "timeout"
    assert entry["abandoned"] is True
    assert f"sync {entry['sync_id']} (trigger startup) timed out" in caplog.text
    assert "in step apply" in caplog.text
    assert metric(running, "kubestash_table_fetch_status") == "1.0"
    assert running.http.get("/readyz").status_code == 503

    stack.kubeapi.faults.clear()
    answer = running.http.post("/render?wait=true", headers={"API-Key": API_KEY})

    assert answer.json()["result"] == "success"
    assert stack.secret_data("team", "second") == {"KEY": "2"}
    assert metric(running, "kubestash_table_fetch_status") == "0.0"
    assert running.http.get("/readyz").status_code == 200


def test_sync_that_cannot_be_freed_fails_healthz(two_secrets: Stack) -> None:
    stack = two_secrets
    stack.kubeapi.faults.add(HANG_SECRET_WRITES)
    variables = {"CREDSTASH_SYNC_TIMEOUT_SECS": "1", "HTTP_TIMEOUT": "30"}
    running = stack.service(variables=variables, schedule_timing=ScheduleTiming(grace_seconds=0.5))

    failing = wait_until(lambda: (a := running.http.get("/healthz")).status_code == 503 and a)
    assert failing.json()["step"] == "apply"
    assert running.history[0]["result"] == "timeout"

    stack.kubeapi.faults.clear()
    wait_until(lambda: running.http.get("/healthz").status_code == 200)
