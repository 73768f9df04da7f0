"""Kubernetes faults from the test server's fault switch, each aimed at one Secret.

A transient fault (429 with Retry-After, 500, a timeout, a dropped connection) is retried
with backoff, and the sync succeeds. A lasting fault fails that Secret alone and is reported,
and the next sync repairs it. The other Secrets are written once, as if nothing happened.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from renderer.cli import record_events
from renderer.scheduler import ScheduleTiming

from .conftest import Rig
from .processes import TcpRelay
from .support import STATUS, expected_secrets, sample, wait_until

NAMES = ["team/first/A", "team/first/B", "team/second/A", "team/second/B", "other/third/C"]
SECOND = "/namespaces/team/secrets/second$"
ADMISSION = 'admission webhook "secrets.policy.example.com" denied the request: label missing'


def seeded(rig: Rig) -> dict[str, str]:
    return rig.put_many(NAMES)


def codes_for(rig: Rig, namespace: str, name: str) -> list[int]:
    return [record.code for record in rig.writes_to(namespace, name)]


def patch_count(code: str) -> float:
    return sample("kubestash_kube_requests_total", verb="patch", code=code)


TRANSIENT = {
    "429": ({"action": "status", "status": 429, "retry_after_seconds": 1, "count": 2}, "429"),
    "500": ({"action": "status", "status": 500, "count": 3}, "500"),
    "503": ({"action": "status", "status": 503, "count": 1}, "503"),
    "drop": ({"action": "drop", "count": 2}, "0"),
    "timeout": ({"action": "delay", "delay_seconds": 1.5, "count": 1}, "0"),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_is_retried(rig: Rig, fault: str) -> None:
    values = seeded(rig)
    syncer = rig.syncer(rig.settings(http_timeout=0.5))
    rule, code = TRANSIENT[fault]
    rig.kubeapi.faults.add({"verb": "patch", "path": SECOND, **rule})
    failures_before = patch_count(code)

    started = time.monotonic()
    result = syncer.full_sync(trigger="test")
    elapsed = time.monotonic() - started

    assert result.result == "success"
    assert rig.cluster.managed() == expected_secrets(values)
    assert codes_for(rig, "team", "first") == [201]
    assert codes_for(rig, "other", "third") == [201]
    assert patch_count(code) - failures_before == rule.get("count")
    assert rig.logged(logging.WARNING, "retrying", "/namespaces/team/secrets/second")
    if fault == "429":
        # Each of the two 429 responses carries Retry-After: 1.
        assert elapsed >= 2
    else:
        # Backoff starts at 0.2 seconds and doubles (renderer.kube.BACKOFF).
        assert elapsed >= sum(0.2 * 2**attempt for attempt in range(rule["count"]))
    if fault == "timeout":
        # The server still serves the request that the client gave up on. Wait for it, so
        # that it cannot land in the next test's cluster.
        wait_until(lambda: len(codes_for(rig, "team", "second")) == 2)
    rig.assert_no_leak(result)


def test_lasting_500_fails_one_secret(rig: Rig) -> None:
    values = seeded(rig)
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")
    values.update({name: rig.put(name) for name in NAMES})
    before = rig.cluster.data("team", "second")

    rig.kubeapi.faults.add({"verb": "patch", "path": SECOND, "action": "status", "status": 500})
    result = syncer.full_sync(trigger="test")
    record_events(syncer.kube, syncer, result)

    assert result.result == "partial"
    assert codes_for(rig, "team", "second") == [201] + [500] * 5
    assert rig.cluster.data("team", "second") == before
    managed = rig.cluster.managed()
    del managed[("team", "second")]
    expected = expected_secrets(values)
    del expected[("team", "second")]
    assert managed == expected
    assert rig.logged(logging.ERROR, "Secret team/second failed")
    assert sample("kubestash_key_synced_failed_status", namespace="team", secret="second", key="A")
    assert rig.cluster.events_for("SyncFailed", kind="Secret", name="second")
    rig.assert_no_leak(result)

    rig.kubeapi.faults.clear()
    repaired = syncer.full_sync(trigger="test")

    assert repaired.result == "success"
    assert rig.cluster.managed() == expected_secrets(values)


def test_conflict_answer_fails_one_secret(rig: Rig) -> None:
    values = seeded(rig)
    syncer = rig.syncer()
    conflict = {"verb": "patch", "path": SECOND, "action": "status", "status": 409, "count": 1}
    rig.kubeapi.faults.add(conflict)

    result = syncer.full_sync(trigger="test")

    outcome = next(s for s in result.secrets if s.name == "second")
    assert outcome.status == "failed"
    assert "409" in outcome.error
    assert codes_for(rig, "team", "second") == [409]
    assert rig.cluster.data("team", "second") is None
    assert rig.cluster.data("team", "first") is not None
    assert rig.logged(logging.ERROR, "Secret team/second failed")
    rig.assert_no_leak(result)

    assert syncer.full_sync(trigger="test").result == "success"
    assert rig.cluster.managed() == expected_secrets(values)


def test_key_owned_by_another_manager_is_taken_over(rig: Rig) -> None:
    values = seeded(rig)
    rig.values.add(manual := "manual-value-kept-by-other-manager")
    rig.cluster.apply_as("helm", "team", "second", {"A": "from-helm", "HELM_ONLY": manual})

    result = rig.syncer().full_sync(trigger="test")

    assert result.result == "success"
    data = rig.cluster.data("team", "second")
    assert data == {"A": values["team/second/A"], "B": values["team/second/B"], "HELM_ONLY": manual}
    entries = rig.cluster.secret("team", "second")["metadata"]["managedFields"]
    helm = next(entry for entry in entries if entry["manager"] == "helm")
    assert set(helm["fieldsV1"]["f:data"]) == {"f:HELM_ONLY"}
    rig.assert_no_leak(result)


def admission_rule(**extra: Any) -> dict[str, Any]:
    rule = {"verb": "patch", "path": SECOND, "action": "status", "status": 403}
    return {**rule, "message": ADMISSION, **extra}


def test_admission_rejection_of_existing_secret(rig: Rig) -> None:
    values = seeded(rig)
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")
    before = rig.cluster.data("team", "second")
    values.update({name: rig.put(name) for name in NAMES})

    rig.kubeapi.faults.add(admission_rule())
    result = syncer.full_sync(trigger="test")
    record_events(syncer.kube, syncer, result)

    outcome = next(s for s in result.secrets if s.name == "second")
    assert outcome.status == "failed"
    assert "denied the request" in outcome.error
    assert codes_for(rig, "team", "second")[-1:] == [403]
    assert rig.cluster.data("team", "second") == before
    assert rig.cluster.data("team", "first") == {
        "A": values["team/first/A"],
        "B": values["team/first/B"],
    }
    [event] = rig.cluster.events_for("SyncFailed", kind="Secret", name="second")
    assert "denied the request" in event["message"]
    rig.assert_no_leak(result)


def test_admission_rejection_of_new_secret_is_an_event(rig: Rig) -> None:
    seeded(rig)
    rig.kubeapi.faults.add(admission_rule())

    syncer = rig.syncer()
    result = syncer.full_sync(trigger="test")
    record_events(syncer.kube, syncer, result)

    assert next(s for s in result.secrets if s.name == "second").status == "failed"
    events = rig.cluster.events_for("SyncFailed", kind="Namespace", name="team")
    assert any("second" in event["message"] for event in events)
    rig.assert_no_leak(result)


def test_failed_secret_list_writes_nothing(rig: Rig) -> None:
    seeded(rig)
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")
    rig.put("team/first/A")
    rig.kubeapi.clear_requests()

    # RBAC taking away the list permission: 403 is final, so the sync stops at once.
    forbidden = {"verb": "list", "path": "/secrets$", "action": "status", "status": 403}
    rig.kubeapi.faults.add(forbidden)
    result = syncer.full_sync(trigger="test")

    assert result.result == "failed"
    assert result.step == "compare"
    assert "reading the live Secrets failed" in result.error
    assert rig.secret_requests() == []
    assert rig.logged(logging.ERROR, f"sync {result.sync_id} failed in step compare")
    rig.assert_no_leak(result)


def test_api_down_at_startup_then_back(rig: Rig, tmp_path: Any) -> None:
    values = seeded(rig)
    relay = TcpRelay(rig.kubeapi.port)
    kubeconfig = tmp_path / "through-relay"
    rig.kubeapi.write_kubeconfig(kubeconfig)
    kubeconfig.write_text(kubeconfig.read_text().replace(rig.kubeapi.url, relay.url))
    timing = ScheduleTiming(startup_retry_initial=0.5, startup_retry_max=1)
    settings = rig.service_settings(http_timeout=0.5)

    running = rig.service(settings, kubeconfig=str(kubeconfig), timing=timing)
    try:
        failed = wait_until(lambda: running.history())
        assert failed[0]["result"] == "failed"
        assert running.http.get("/readyz").status_code == 503
        assert running.http.get("/metrics").status_code == 200
        assert rig.logged(logging.WARNING, "retrying a full sync")

        relay.start()
        wait_until(lambda: running.http.get("/readyz").status_code == 200)
        history = running.history()
    finally:
        relay.stop()

    assert history[-1]["result"] == "success"
    assert rig.cluster.managed() == expected_secrets(values)
    assert rig.cluster.secret("team", "first")["metadata"]["annotations"][STATUS] == "Synced"
    rig.assert_no_leak(history)
