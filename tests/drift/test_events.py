"""Kubernetes Events written by kubestash, read back with kubectl from the API test server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from renderer import metrics
from renderer.events import EventRecorder
from renderer.names import SecretRef

from .support import NAMESPACE, SECRET, TABLE_VALUES, b64, wait_for


@pytest.fixture
def recorder(api_client) -> Iterator[EventRecorder]:
    recorder = EventRecorder(api_client, dry_run=False, instance="kubestash-test-0")
    recorder.start()
    yield recorder
    recorder.stop()


def list_events(kubectl, namespace: str = NAMESPACE, reason: str | None = None) -> list[dict]:
    items = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    return [item for item in items if reason is None or item.get("reason") == reason]


def assert_no_values(events: list[dict], values: list[str]) -> None:
    text = json.dumps(events)
    for value in values:
        assert value not in text
        assert b64(value) not in text


def event_creates() -> float:
    labels = {"verb": "create", "code": "201"}
    return metrics.REGISTRY.get_sample_value("kubestash_kube_requests_total", labels) or 0.0


def test_synced_event_names_keys(syncer, recorder, kubectl):
    result = syncer.full_sync(trigger="startup")
    creates = event_creates()

    recorder.record_sync(result)
    assert recorder.wait_idle()

    [event] = list_events(kubectl, reason="Synced")
    secret = kubectl.secret()
    assert event["involvedObject"]["kind"] == "Secret"
    assert event["involvedObject"]["name"] == SECRET
    assert event["involvedObject"]["uid"] == secret["metadata"]["uid"]
    assert event["type"] == "Normal"
    assert "API_KEY" in event["message"]
    assert "DB_PASSWORD" in event["message"]
    assert event["source"]["component"] == "kubestash"
    assert event["reportingComponent"] == "kubestash"
    assert event["reportingInstance"] == "kubestash-test-0"
    assert_no_values([event], list(TABLE_VALUES.values()))
    assert event_creates() == creates + 1


def test_unchanged_sync_writes_no_event(syncer, recorder, kubectl):
    syncer.full_sync(trigger="startup")

    recorder.record_sync(syncer.full_sync(trigger="schedule"))
    assert recorder.wait_idle()

    assert list_events(kubectl) == []


def test_missing_namespace_event_on_namespace(syncer, recorder, kubectl, seeded):
    seeded.put("absent/app/TOKEN", "token-in-missing-namespace")
    result = syncer.full_sync(trigger="startup")

    recorder.record_sync(result)
    assert recorder.wait_idle()

    [event] = list_events(kubectl, namespace="default", reason="SyncFailed")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": "absent",
    }
    assert event["type"] == "Warning"
    assert "app" in event["message"]
    assert_no_values([event], ["token-in-missing-namespace"])


def test_skipped_secret_event_on_secret(syncer, recorder, kubectl, seeded):
    kubectl(
        "create",
        "secret",
        "generic",
        "login",
        "-n",
        NAMESPACE,
        "--type=kubernetes.io/basic-auth",
        "--from-literal=username=someone",
    )
    seeded.put(f"{NAMESPACE}/login/PASSWORD", "basic-auth-password-55")
    result = syncer.full_sync(trigger="startup")

    recorder.record_sync(result)
    assert recorder.wait_idle()

    failed = list_events(kubectl, reason="SyncFailed")
    assert [e["involvedObject"]["name"] for e in failed] == ["login"]
    assert failed[0]["involvedObject"]["kind"] == "Secret"
    assert_no_values(failed, ["basic-auth-password-55"])


def test_failed_key_event_names_key(syncer, recorder, kubectl, seeded):
    syncer.full_sync(trigger="startup")
    seeded.put(f"{NAMESPACE}/{SECRET}/API_KEY", "version-that-fails-hmac")
    seeded.tamper(f"{NAMESPACE}/{SECRET}/API_KEY")

    recorder.record_sync(syncer.full_sync(trigger="schedule"))
    assert recorder.wait_idle()

    [event] = list_events(kubectl, reason="SyncFailed")
    assert "API_KEY" in event["message"]
    assert event["involvedObject"]["kind"] == "Secret"
    assert_no_values([event], ["version-that-fails-hmac", *TABLE_VALUES.values()])


def test_invalid_name_event(syncer, recorder, kubectl, seeded):
    seeded.put(f"{NAMESPACE}/{SECRET}/bad key!", "value-of-invalid-name")
    syncer.full_sync(trigger="startup")

    recorder.record_invalid_names(syncer.index.invalid())
    assert recorder.wait_idle()

    [event] = list_events(kubectl, reason="KeyInvalid")
    assert event["involvedObject"]["name"] == SECRET
    assert "bad key!" in event["message"]
    assert event["type"] == "Warning"
    assert_no_values([event], ["value-of-invalid-name"])


def test_flapping_key_is_rate_limited(syncer, recorder, kubectl, kubeapi):
    syncer.full_sync(trigger="startup")
    first_request = len(kubeapi.requests)

    for _ in range(50):
        recorder.record_drift_repaired(NAMESPACE, SECRET, ["API_KEY"], ["kubectl-patch"])
    assert recorder.wait_idle()

    [event] = list_events(kubectl, reason="DriftRepaired")
    assert event["count"] == 1
    event_writes = [
        request
        for request in kubeapi.requests[first_request:]
        if request.resource == "events" and request.verb in ("create", "patch", "update")
    ]
    assert len(event_writes) == 1


def test_repeats_aggregate_into_count(syncer, api_client, kubectl):
    syncer.full_sync(trigger="startup")
    recorder = EventRecorder(api_client, dry_run=False, interval=0.3)
    recorder.start()
    try:
        for _ in range(20):
            recorder.record_drift_repaired(NAMESPACE, SECRET, ["API_KEY"])
        assert recorder.wait_idle()

        def counted() -> list[dict]:
            events = list_events(kubectl, reason="DriftRepaired")
            return events if events and events[0]["count"] == 20 else []

        events = wait_for(counted, timeout=5, message="the count did not reach 20")
    finally:
        recorder.stop()
    assert len(events) == 1


def test_drift_repair_records_event(syncer, start_monitor, recorder, kubectl):
    syncer.full_sync(trigger="startup")

    def heal(refs: list[SecretRef]) -> None:
        monitor.on_sync(syncer.sync_secrets(refs, trigger="drift"))

    monitor = start_monitor(heal=heal, events=recorder)
    monitor.on_sync(None)
    patch = json.dumps({"data": {"API_KEY": b64("edited-by-hand-3b1c")}})
    kubectl("patch", "secret", SECRET, "-n", NAMESPACE, "--type", "merge", "-p", patch)

    events = wait_for(
        lambda: list_events(kubectl, reason="DriftRepaired"),
        timeout=10,
        message="no DriftRepaired Event",
    )
    assert "API_KEY" in events[0]["message"]
    assert events[0]["involvedObject"]["kind"] == "Secret"
    assert_no_values(events, ["edited-by-hand-3b1c", *TABLE_VALUES.values()])


def test_event_write_failure_is_logged(syncer, recorder, kubeapi, caplog):
    result = syncer.full_sync(trigger="startup")
    caplog.set_level(logging.WARNING, logger="renderer.events")
    kubeapi.faults.add({"action": "status", "status": 500, "path": "/events"})

    recorder.record_sync(result)
    assert recorder.wait_idle()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Could not write Event Synced for team/app" in line for line in warnings)


def test_dry_run_writes_no_events(api_client, kubectl, kubeapi, seeded):
    recorder = EventRecorder(api_client, dry_run=True)
    recorder.start()
    first_request = len(kubeapi.requests)
    try:
        recorder.record(NAMESPACE, SECRET, "DriftRepaired", "Re-applied keys API_KEY")
        assert recorder.wait_idle()
    finally:
        recorder.stop()

    assert list_events(kubectl) == []
    writes = [
        request
        for request in kubeapi.requests[first_request:]
        if request.resource == "events" and request.verb not in ("get", "list", "watch")
    ]
    assert writes == []
