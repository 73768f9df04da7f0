"""Namespaces, coordination.k8s.io Leases, and core and events.k8s.io Events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from kubeapi_support import secrets_path


def test_start_namespaces_exist(cluster):
    answer = cluster.http.get("/api/v1/namespaces")
    names = {item["metadata"]["name"] for item in answer.json()["items"]}

    assert {"default", "kube-system", "kube-public"} <= names


def test_namespace_is_active_and_labelled(cluster, namespace):
    answer = cluster.http.get(f"/api/v1/namespaces/{namespace}")

    body = answer.json()
    assert body["status"]["phase"] == "Active"
    assert body["metadata"]["labels"]["kubernetes.io/metadata.name"] == namespace
    assert "kubernetes" in body["spec"]["finalizers"]


def test_invalid_namespace_name_is_rejected(cluster):
    answer = cluster.http.post("/api/v1/namespaces", json={"metadata": {"name": "a.b"}})

    assert answer.status_code == 422
    cause = answer.json()["details"]["causes"][0]
    assert cause["field"] == "metadata.name"
    assert "RFC 1123 label" in cause["message"]


def test_namespace_deletion_deletes_its_secrets(cluster):
    name = f"kubeapi-conf-{uuid.uuid4().hex[:8]}"
    cluster.http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    cluster.http.post(secrets_path(name), json={"metadata": {"name": "inside"}})

    answer = cluster.http.delete(f"/api/v1/namespaces/{name}")

    assert answer.status_code == 200
    assert answer.json()["status"]["phase"] == "Terminating"
    assert answer.json()["metadata"]["deletionTimestamp"]
    _wait_gone(cluster, f"/api/v1/namespaces/{name}")
    assert cluster.http.get(secrets_path(name, "inside")).status_code == 404


def _wait_gone(cluster, path: str) -> None:
    """Wait for a namespace to finish terminating (at once here, seconds on a cluster)."""
    import time

    deadline = time.monotonic() + 120
    while cluster.http.get(path).status_code != 404:
        assert time.monotonic() < deadline, f"{path} still exists"
        time.sleep(0.5)


def test_default_namespace_cannot_be_deleted(cluster):
    answer = cluster.http.request("DELETE", "/api/v1/namespaces/default", params={"dryRun": "All"})

    assert answer.status_code == 403
    assert answer.json()["reason"] == "Forbidden"


def _lease_path(namespace: str, name: str = "") -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


def test_lease_create_and_renew(cluster, namespace):
    now = datetime.now(UTC).isoformat()
    spec = {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": now, "renewTime": now}
    created = cluster.http.post(
        _lease_path(namespace), json={"metadata": {"name": "l"}, "spec": spec}
    )
    assert created.status_code == 201
    lease = created.json()
    assert lease["kind"] == "Lease"
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["spec"]["renewTime"].endswith("Z")

    lease["spec"]["renewTime"] = datetime.now(UTC).isoformat()
    renewed = cluster.http.put(_lease_path(namespace, "l"), json=lease)

    assert renewed.status_code == 200
    stale = cluster.http.put(_lease_path(namespace, "l"), json=lease)
    assert stale.status_code == 409


def test_lease_not_found_names_group(cluster, namespace):
    answer = cluster.http.get(_lease_path(namespace, "absent"))

    assert answer.status_code == 404
    assert answer.json()["message"] == 'leases.coordination.k8s.io "absent" not found'
    assert answer.json()["details"]["group"] == "coordination.k8s.io"


def test_lease_duration_must_be_positive(cluster, namespace):
    body = {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}
    answer = cluster.http.post(_lease_path(namespace), json=body)

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"


def _v1_event(namespace: str, name: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": datetime.now(UTC).isoformat(),
        "reportingController": "kubestash.io/sync",
        "reportingInstance": "kubestash-0",
        "action": "Sync",
        "reason": "Synced",
        "type": "Normal",
        "note": "3 keys",
        "regarding": {"kind": "Secret", "name": "s", "namespace": namespace, "apiVersion": "v1"},
    }


def test_events_v1_event_is_visible_as_core_event(cluster, namespace):
    path = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    created = cluster.http.post(path, json=_v1_event(namespace, "e1"))
    assert created.status_code == 201, created.text

    core = cluster.http.get(f"/api/v1/namespaces/{namespace}/events/e1")

    assert core.status_code == 200
    body = core.json()
    assert body["message"] == "3 keys"
    assert body["involvedObject"]["name"] == "s"
    assert body["reportingComponent"] == "kubestash.io/sync"


def test_events_v1_event_requires_reporting_fields(cluster, namespace):
    event = _v1_event(namespace, "bad")
    del event["reportingController"]
    del event["action"]
    path = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    answer = cluster.http.post(path, json=event)

    assert answer.status_code == 422
    fields = {cause["field"] for cause in answer.json()["details"]["causes"]}
    assert {"reportingController", "action"} <= fields


def test_core_event_round_trip(cluster, namespace):
    event = {
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Secret", "name": "s", "namespace": namespace},
        "reason": "SyncFailed",
        "message": "key A failed",
        "type": "Warning",
        "count": 1,
        "firstTimestamp": "2025-01-01T00:00:00Z",
        "lastTimestamp": "2025-01-01T00:00:00Z",
        "source": {"component": "kubestash"},
    }
    path = f"/api/v1/namespaces/{namespace}/events"
    created = cluster.http.post(path, json=event)
    assert created.status_code == 201, created.text

    listed = cluster.http.get(path, params={"fieldSelector": "involvedObject.name=s"})
    assert [item["metadata"]["name"] for item in listed.json()["items"]] == ["e2"]
    v1 = cluster.http.get(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/e2").json()
    assert v1["note"] == "key A failed"
    assert v1["deprecatedCount"] == 1


@pytest.mark.parametrize("missing", ["reason", "reportingInstance"])
def test_core_event_with_event_time_needs_reporting_fields(cluster, namespace, missing):
    event = {
        "metadata": {"name": "e3"},
        "involvedObject": {"kind": "Secret", "name": "s", "namespace": namespace},
        "eventTime": datetime.now(UTC).isoformat(),
        "reportingComponent": "kubestash",
        "reportingInstance": "pod-0",
        "action": "Sync",
        "reason": "Synced",
        "type": "Normal",
    }
    del event[missing]
    answer = cluster.http.post(f"/api/v1/namespaces/{namespace}/events", json=event)

    assert answer.status_code == 422
    assert missing in {cause["field"] for cause in answer.json()["details"]["causes"]}


def test_event_fields_conflict_across_versions(cluster, namespace):
    core = {
        "metadata": {"name": "e4"},
        "involvedObject": {"kind": "Secret", "name": "s", "namespace": namespace},
        "reason": "Synced",
        "message": "first",
        "type": "Normal",
    }
    created = cluster.http.post(
        f"/api/v1/namespaces/{namespace}/events", json=core, params={"fieldManager": "recorder"}
    )
    assert created.status_code == 201, created.text

    applied = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e4", "namespace": namespace},
        "note": "second",
    }
    answer = cluster.http.patch(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/e4",
        content=json.dumps(applied),
        params={"fieldManager": "other"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )

    assert answer.status_code == 409
    assert answer.json()["details"]["causes"][0]["field"] == ".note"
    assert 'conflict with "recorder" using v1' in answer.json()["message"]
