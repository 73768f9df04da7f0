"""Process faults: `kubestash serve` killed with SIGKILL or stopped with SIGTERM in the middle
of an apply, and a sync stuck past CREDSTASH_SYNC_TIMEOUT_SECS.

The service runs as a child process against moto_server and the Kubernetes API test
server. Each apply is one request, so whatever happens to the process, every Secret keeps
either all its old keys or all its new ones, and a restart converges on the table.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .awsfaults import Sealer
from .conftest import API_KEY, Rig
from .processes import ServiceProcess
from .support import assert_consistent, expected_secrets, token, wait_until

SECRETS = 20
KEYS = 3
SLOW_APPLY = {"verb": "patch", "path": "/secrets/", "action": "delay", "delay_seconds": 0.15}


NAMES = [f"team/app-{secret:02d}/KEY_{key}" for secret in range(SECRETS) for key in range(KEYS)]


def table(rig: Rig, version: int, names: list[str] = NAMES) -> dict[str, str]:
    """Write `version` of every name with a new value; return the values."""
    values = {name: rig.values.add(token(f"v{version}")) for name in names}
    Sealer(rig.store).write(values, version)
    return values


class Processes:
    def __init__(self, rig: Rig, folder: Path) -> None:
        self.rig = rig
        self.folder = folder
        self.started: list[ServiceProcess] = []

    def start(self, **variables: str) -> ServiceProcess:
        environ = {
            **self.rig.store.env(),
            "KUBECONFIG": self.rig.kubeconfig,
            "DRY_RUN": "false",
            "WAIT_TIME": "0.2",
            "CRON_HOURS": "1000",
            "KUBESTASH_API_KEY": API_KEY,
            "NAMESPACE_EXCLUDE_FILTER": "kube-system|kubestash",
            "RENDER_RATE_LIMIT": "1000 per 1 minute",
            "APPLY_WORKERS": "1",
            "LOG_FORMAT": "json",
            **variables,
        }
        log = self.folder / f"service-{len(self.started)}.log"
        process = ServiceProcess(environ, log)
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            process.stop()

    def assert_no_leak(self) -> None:
        for process in self.started:
            self.rig.values.assert_absent(str(process.log.name), process.output())


@pytest.fixture
def processes(rig: Rig, tmp_path: Path) -> Iterator[Processes]:
    started = Processes(rig, tmp_path)
    yield started
    started.stop()


def applied(rig: Rig) -> int:
    return sum(1 for record in rig.kubeapi.requests if record.verb == "patch" and record.code < 300)


def assert_converged(rig: Rig, values: dict[str, str]) -> None:
    assert rig.cluster.managed() == expected_secrets(values)
    for secret in rig.cluster.secrets("team"):
        assert_consistent(secret)


def test_sigkill_mid_sync_then_restart_converges(rig: Rig, processes: Processes) -> None:
    values = table(rig, 1)
    rig.kubeapi.faults.add(SLOW_APPLY)
    first = processes.start()
    wait_until(lambda: applied(rig) >= 5)

    os.kill(first.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    assert 5 <= applied(rig) < SECRETS
    rig.kubeapi.faults.clear()
    values.update(table(rig, 2, [name for name in NAMES if name.endswith("KEY_0")]))
    second = processes.start()

    wait_until(second.ready)
    assert_converged(rig, values)
    processes.assert_no_leak()


def test_sigterm_mid_apply_leaves_no_half_secret(rig: Rig, processes: Processes) -> None:
    old = table(rig, 1)
    rig.syncer().full_sync(trigger="test")
    new = table(rig, 2)
    rig.kubeapi.clear_requests()
    rig.kubeapi.faults.add(SLOW_APPLY)
    service = processes.start()
    wait_until(lambda: applied(rig) >= 3)

    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=15)

    assert time.monotonic() - began < 10
    assert code == 0
    assert "received SIGTERM" in service.output()
    updated = 0
    for (namespace, name), data in rig.cluster.managed().items():
        before = expected_secrets(old)[(namespace, name)]
        after = expected_secrets(new)[(namespace, name)]
        assert data in (before, after), f"Secret {namespace}/{name} is half applied"
        updated += data == after
    assert 3 <= updated < SECRETS
    for secret in rig.cluster.secrets("team"):
        assert_consistent(secret)

    rig.kubeapi.faults.clear()
    again = processes.start()
    wait_until(again.ready)
    assert_converged(rig, new)
    processes.assert_no_leak()


def test_stop_during_sync_ends_every_task(rig: Rig) -> None:
    table(rig, 1)
    rig.kubeapi.faults.add(SLOW_APPLY)
    running = rig.service(rig.service_settings(apply_workers=1))
    wait_until(lambda: applied(rig) >= 3)

    finished = running.stop()

    assert finished is True
    assert not rig.logged(logging.ERROR, "did not stop in time")
    rig.assert_no_leak()


def test_sync_stuck_past_timeout_applies_nothing_after(rig: Rig, processes: Processes) -> None:
    values = rig.put_many(["other/third/KEY", "team/first/KEY", "team/second/KEY"])
    rig.kubeapi.faults.add({"verb": "patch", "path": "/team/secrets/first$", "action": "hang"})
    variables = {"CREDSTASH_SYNC_TIMEOUT_SECS": "1", "HTTP_TIMEOUT": "0.5"}
    service = processes.start(**variables)

    history = wait_until(lambda: service.status().get("syncs", {}).get("history"))
    entry = history[0]
    assert entry["result"] == "timeout"
    assert entry["abandoned"] is True
    assert rig.writes_to("team", "second") == []
    assert rig.cluster.data("team", "first") is None
    assert rig.cluster.data("other", "third") == {"KEY": values["other/third/KEY"]}
    output = service.output()
    assert f"sync {entry['sync_id']} (trigger startup) timed out" in output
    assert "in step apply" in output
    assert "kubestash_table_fetch_status 1.0" in service.get("/metrics").text
    assert service.get("/readyz").status_code == 503
    assert service.get("/healthz").status_code == 200

    rig.kubeapi.faults.clear()
    answer = service.http.post("/render?wait=true", headers={"API-Key": API_KEY})

    assert answer.json()["result"] == "success"
    assert rig.cluster.managed() == expected_secrets(values)
    assert "kubestash_table_fetch_status 0.0" in service.get("/metrics").text
    processes.assert_no_leak()
