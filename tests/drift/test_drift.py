"""Drift detection and repair against the Kubernetes API test server and moto."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from renderer.drift import CHANGED, MISSING, SECRET_MISSING, DriftMonitor
from renderer.kube import KubeClient
from renderer.names import SecretRef
from renderer.sync import Syncer
from renderer.testing.kubeapi.server import KubeAPIServer

from .support import (
    NAMESPACE,
    REF,
    SECRET,
    TABLE_VALUES,
    Kubectl,
    b64,
    drift_gauge,
    wait_for,
)

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
API_KEY = TABLE_VALUES[f"{NAMESPACE}/{SECRET}/API_KEY"]
DB_PASSWORD = TABLE_VALUES[f"{NAMESPACE}/{SECRET}/DB_PASSWORD"]


def edit_key(kubectl, key: str, value: str) -> None:
    """Change one key the way `kubectl edit` does: an update by another field manager."""
    patch = json.dumps({"data": {key: b64(value)}})
    kubectl("patch", "secret", SECRET, "-n", NAMESPACE, "--type", "merge", "-p", patch)


def apply_as(kubectl, manager: str, data: dict[str, str]) -> None:
    """Server-side apply `data` to the Secret as another field manager, taking ownership."""
    lines = "\n".join(f"  {key}: {b64(value)}" for key, value in data.items())
    manifest = (
        "apiVersion: v1\nkind: Secret\n"
        f"metadata:\n  name: {SECRET}\n  namespace: {NAMESPACE}\n"
        f"data:\n{lines}\n"
    )
    kubectl(
        "apply",
        "--server-side",
        f"--field-manager={manager}",
        "--force-conflicts",
        "-f",
        "-",
        stdin=manifest,
    )


def seen_by_watch(monitor, resource_version: str) -> bool:
    live = monitor.watch.get(REF)
    return live is not None and int(live.resource_version) >= int(resource_version)


def synced(syncer, monitor=None) -> Any:
    result = syncer.full_sync(trigger="startup")
    assert result.result == "success", result.to_dict()
    if monitor is not None:
        monitor.on_sync(result)
    return result


def test_patched_key_raises_drift_gauge(syncer, start_monitor, kubectl):
    synced(syncer)
    monitor = start_monitor()
    monitor.on_sync(None)
    assert drift_gauge("API_KEY") == 0

    edit_key(kubectl, "API_KEY", "edited-by-hand")

    wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=2, message="API_KEY drift gauge not 1")
    assert drift_gauge("DB_PASSWORD") == 0
    entry = monitor.snapshot()["secrets"][0]
    assert entry["keys"] == [{"key": "API_KEY", "reason": CHANGED}]


def test_drift_is_repaired_outside_dry_run(syncer, start_monitor, kubectl):
    synced(syncer)
    gauge_at_heal: list[float | None] = []

    def heal(refs: list[SecretRef]) -> None:
        gauge_at_heal.append(drift_gauge("API_KEY"))
        monitor.on_sync(syncer.sync_secrets(refs, trigger="drift"))

    monitor = start_monitor(heal=heal)
    monitor.on_sync(None)

    edit_key(kubectl, "API_KEY", "edited-by-hand")

    wait_for(lambda: gauge_at_heal, timeout=2, message="no repair started")
    assert gauge_at_heal[0] == 1
    wait_for(
        lambda: kubectl.value("API_KEY") == API_KEY,
        timeout=5,
        message="API_KEY not restored",
    )
    wait_for(lambda: drift_gauge("API_KEY") == 0, timeout=5, message="gauge did not return to 0")
    assert monitor.repaired_total == 1


def test_server_side_apply_drift_is_repaired(syncer, start_monitor, kubectl, caplog):
    synced(syncer)

    def heal(refs: list[SecretRef]) -> None:
        monitor.on_sync(syncer.sync_secrets(refs, trigger="drift"))

    monitor = start_monitor(heal=heal)
    monitor.on_sync(None)
    caplog.set_level(logging.INFO, logger="renderer.drift")

    apply_as(kubectl, "someone-else", {"DB_PASSWORD": "applied-by-someone-else"})

    wait_for(
        lambda: kubectl.value("DB_PASSWORD") == DB_PASSWORD,
        timeout=5,
        message="DB_PASSWORD not restored",
    )
    wait_for(lambda: monitor.repaired_total == 1, timeout=5, message="repair not counted")
    assert drift_gauge("DB_PASSWORD") == 0
    drift_lines = [r.getMessage() for r in caplog.records if "drifted" in r.getMessage()]
    assert any("DB_PASSWORD" in line and "someone-else" in line for line in drift_lines)
    assert any("Repaired drift in Secret team/app" in r.getMessage() for r in caplog.records)


def test_manual_key_never_drifts(syncer, start_monitor, kubectl):
    synced(syncer)
    heals: list[list[SecretRef]] = []
    monitor = start_monitor(heal=heals.append)
    monitor.on_sync(None)

    edit_key(kubectl, "ADDED_BY_HAND", "hand-made")
    resource_version = kubectl.secret()["metadata"]["resourceVersion"]
    wait_for(lambda: seen_by_watch(monitor, resource_version), timeout=5, message="no event")

    assert drift_gauge("ADDED_BY_HAND") is None
    assert drift_gauge("API_KEY") == 0
    assert drift_gauge("DB_PASSWORD") == 0
    assert monitor.snapshot()["drifting_keys"] == 0
    assert heals == []


def test_removed_key_is_missing_drift(syncer, start_monitor, kubectl):
    synced(syncer)
    monitor = start_monitor()
    monitor.on_sync(None)

    patch = '[{"op": "remove", "path": "/data/DB_PASSWORD"}]'
    kubectl("patch", "secret", SECRET, "-n", NAMESPACE, "--type", "json", "-p", patch)

    wait_for(lambda: drift_gauge("DB_PASSWORD") == 1, timeout=2, message="no drift")
    keys = monitor.snapshot()["secrets"][0]["keys"]
    assert keys == [{"key": "DB_PASSWORD", "reason": MISSING}]


def test_deleted_secret_is_recreated(syncer, start_monitor, kubectl):
    synced(syncer)
    reasons: list[set[str]] = []

    def heal(refs: list[SecretRef]) -> None:
        reasons.append({k["reason"] for s in monitor.snapshot()["secrets"] for k in s["keys"]})
        monitor.on_sync(syncer.sync_secrets(refs, trigger="drift"))

    monitor = start_monitor(heal=heal)
    monitor.on_sync(None)

    kubectl("delete", "secret", SECRET, "-n", NAMESPACE)

    wait_for(lambda: reasons, timeout=2, message="no repair started")
    assert reasons[0] == {SECRET_MISSING}
    wait_for(lambda: kubectl.value("API_KEY") == API_KEY, timeout=5, message="not recreated")
    wait_for(lambda: drift_gauge("API_KEY") == 0, timeout=5, message="gauge did not return to 0")


def test_dry_run_reports_without_writing(syncer, start_monitor, kubectl, kubeapi):
    synced(syncer)
    heals: list[list[SecretRef]] = []
    monitor = start_monitor(dry_run=True, heal=heals.append)
    monitor.on_sync(syncer.full_sync(trigger="schedule", dry_run=True))
    first_request = len(kubeapi.requests)

    edit_key(kubectl, "API_KEY", "edited-by-hand")
    resource_version = kubectl.secret()["metadata"]["resourceVersion"]
    wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=2, message="no drift reported")
    monitor.on_sync(None)

    assert drift_gauge("API_KEY") == 1
    assert heals == []
    assert monitor.snapshot()["secrets"][0]["repair"] == "dry run: not repaired"
    assert kubectl.value("API_KEY") == "edited-by-hand"
    assert kubectl.secret()["metadata"]["resourceVersion"] == resource_version
    writes = [
        request
        for request in kubeapi.requests[first_request:]
        if request.verb in WRITE_VERBS and request.resource == "secrets"
    ]
    assert [(w.verb, w.name) for w in writes] == [("patch", SECRET)]


def test_failed_key_is_not_drift(syncer, start_monitor, kubectl, seeded):
    synced(syncer)
    seeded.put(f"{NAMESPACE}/{SECRET}/API_KEY", "newer-version-that-fails")
    seeded.tamper(f"{NAMESPACE}/{SECRET}/API_KEY")
    result = syncer.full_sync(trigger="schedule")
    assert "API_KEY" in syncer.desired[REF].failed
    heals: list[list[SecretRef]] = []
    monitor = start_monitor(heal=heals.append)
    monitor.on_sync(result)

    edit_key(kubectl, "API_KEY", "edited-by-hand")
    resource_version = kubectl.secret()["metadata"]["resourceVersion"]
    wait_for(lambda: seen_by_watch(monitor, resource_version), timeout=5, message="no event")

    assert drift_gauge("API_KEY") == 0
    assert heals == []
    failed = monitor.snapshot()["failed"]
    assert [k["key"] for k in failed[0]["keys"]] == ["API_KEY"]


def test_key_left_table_drops_series(syncer, start_monitor, seeded):
    synced(syncer)
    monitor = start_monitor()
    monitor.on_sync(None)
    assert drift_gauge("DB_PASSWORD") == 0

    seeded.delete(f"{NAMESPACE}/{SECRET}/DB_PASSWORD")
    synced(syncer, monitor)

    assert drift_gauge("DB_PASSWORD") is None
    assert drift_gauge("API_KEY") == 0


def test_new_table_key_waits_for_watch(syncer, start_monitor, seeded, kubectl):
    synced(syncer)
    monitor = start_monitor()
    monitor.on_sync(None)

    seeded.put(f"{NAMESPACE}/{SECRET}/NEW_KEY", "new-table-value")
    synced(syncer, monitor)

    wait_for(lambda: drift_gauge("NEW_KEY") == 0, timeout=2, message="NEW_KEY has no 0 series")
    assert monitor.snapshot()["drifting_keys"] == 0


def test_fighting_manager_backs_off(syncer, start_monitor, kubectl, caplog):
    synced(syncer)
    heal_times: list[float] = []
    fights = threading.Semaphore(0)

    def heal(refs: list[SecretRef]) -> None:
        heal_times.append(time.monotonic())
        monitor.on_sync(syncer.sync_secrets(refs, trigger="drift"))
        fights.release()

    monitor = start_monitor(heal=heal, backoff_initial=0.5, loop_window=30)
    monitor.on_sync(None)
    caplog.set_level(logging.WARNING, logger="renderer.drift")

    for round_number in range(4):
        edit_key(kubectl, "API_KEY", f"fighting-value-{round_number}")
        assert fights.acquire(timeout=10), f"no repair in round {round_number}"
        wait_for(lambda: drift_gauge("API_KEY") == 0, timeout=5, message="not repaired")

    gaps = [later - earlier for earlier, later in zip(heal_times, heal_times[1:], strict=False)]
    assert len(heal_times) == 4
    assert gaps[0] >= 0.5
    assert gaps[1] >= 1.0
    assert gaps[2] >= 2.0
    assert any("drifted again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [500, 503])
def test_watch_restarts_after_errors(syncer, start_monitor, kubectl, kubeapi, status):
    synced(syncer)
    monitor = start_monitor(watch_timeout=1)
    monitor.on_sync(None)
    kubeapi.faults.add({"action": "status", "status": status, "verb": "watch", "count": 2})
    wait_for(lambda: monitor.watch.restarts >= 1, timeout=10, message="the watch did not fail")

    edit_key(kubectl, "API_KEY", "edited-while-failing")

    wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=10, message="no drift after restart")


@pytest.fixture
def short_history_server() -> Iterator[KubeAPIServer]:
    server = KubeAPIServer(port=0, history_size=5).start()
    yield server
    server.stop()


def test_watch_relists_after_gone(settings, credstash_table, short_history_server, tmp_path):
    kubectl = Kubectl(short_history_server.write_kubeconfig(tmp_path / "kubeconfig"))
    kubectl("create", "namespace", NAMESPACE)
    credstash_table.put_many(TABLE_VALUES)
    kube = KubeClient(settings, kubeconfig=str(kubectl.kubeconfig))
    syncer = Syncer(settings, kube=kube)
    synced(syncer)
    monitor = DriftMonitor(
        kube.api_client, desired=lambda: syncer.desired, dry_run=False, watch_timeout=1
    )
    monitor.start()
    try:
        assert monitor.watch.wait_listed(10)
        monitor.on_sync(None)
        relists = monitor.watch.relists
        short_history_server.faults.add({"action": "status", "status": 500, "verb": "watch"})
        wait_for(lambda: not monitor.watch.watching, timeout=5, message="watch still open")
        for number in range(12):
            kubectl("create", "secret", "generic", f"filler-{number}", "-n", NAMESPACE)
        short_history_server.faults.clear()

        edit_key(kubectl, "API_KEY", "edited-after-compaction")

        wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=10, message="no drift after 410")
        assert monitor.watch.relists > relists
    finally:
        monitor.stop()
        kube.close()


def test_unwritable_secret_is_not_drift(syncer, start_monitor, seeded):
    seeded.put("absent/app/TOKEN", "token-for-another-cluster")
    result = syncer.full_sync(trigger="startup")
    monitor = start_monitor()

    monitor.on_sync(result)

    assert drift_gauge("TOKEN", namespace="absent", secret="app") == 0
    assert drift_gauge("API_KEY") == 0


def test_stopped_monitor_drops_series(syncer, start_monitor, kubectl):
    synced(syncer)
    monitor = start_monitor()
    monitor.on_sync(None)
    edit_key(kubectl, "API_KEY", "edited-by-hand")
    wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=2, message="no drift")

    monitor.stop()

    assert drift_gauge("API_KEY") is None
    assert drift_gauge("DB_PASSWORD") is None
