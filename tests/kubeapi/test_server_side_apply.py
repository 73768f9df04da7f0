"""Server-side apply rules, from the Kubernetes documentation of server-side apply."""

from __future__ import annotations

import json

from kubeapi_support import apply, owners, secrets_path


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def _get(cluster, namespace: str, name: str) -> dict:
    answer = cluster.http.get(secrets_path(namespace, name))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_apply_of_missing_object_creates_it(cluster, namespace):
    answer = apply(cluster, namespace, "created", {"data": {"A": _b64("1")}}, manager="kubestash")

    assert answer.status_code == 201
    assert answer.json()["data"] == {"A": _b64("1")}
    assert answer.json()["type"] == "Opaque"


def test_apply_records_exactly_the_applied_fields(cluster, namespace):
    body = {
        "metadata": {"labels": {"app": "x"}, "annotations": {"note": "y"}},
        "data": {"A": _b64("1")},
        "type": "Opaque",
    }
    answer = apply(cluster, namespace, "owned", body, manager="kubestash")

    entry = answer.json()["metadata"]["managedFields"][0]
    assert entry["manager"] == "kubestash"
    assert entry["operation"] == "Apply"
    assert entry["apiVersion"] == "v1"
    assert entry["fieldsType"] == "FieldsV1"
    assert "time" in entry
    assert entry["fieldsV1"] == {
        "f:data": {"f:A": {}},
        "f:metadata": {"f:annotations": {"f:note": {}}, "f:labels": {"f:app": {}}},
        "f:type": {},
    }


def test_apply_requires_field_manager(cluster, namespace):
    document = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    answer = cluster.http.patch(
        secrets_path(namespace, "x"),
        content=json.dumps(document),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )

    assert answer.status_code == 422
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "fieldManager"
    assert "is required for apply patch" in status["message"]


def test_apply_rejects_managed_fields_in_body(cluster, namespace):
    body = {"metadata": {"managedFields": [{"manager": "x", "operation": "Apply"}]}}
    answer = apply(cluster, namespace, "mf", body, manager="kubestash")

    assert answer.status_code == 400
    assert answer.json()["message"] == "metadata.managedFields must be nil"


def test_apply_accepts_yaml_body(cluster, namespace):
    body = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: yaml\ndata:\n  A: MQ==\n"
    answer = cluster.http.patch(
        secrets_path(namespace, "yaml"),
        content=body,
        params={"fieldManager": "kubestash"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )

    assert answer.status_code == 201
    assert answer.json()["data"] == {"A": "MQ=="}


def test_removed_key_is_pruned(cluster, namespace):
    apply(
        cluster, namespace, "prune", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="kubestash"
    )
    answer = apply(cluster, namespace, "prune", {"data": {"A": _b64("1")}}, manager="kubestash")

    assert answer.status_code == 200
    assert answer.json()["data"] == {"A": _b64("1")}


def test_removed_key_leaves_manual_keys(cluster, namespace):
    apply(
        cluster, namespace, "mixed", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="kubestash"
    )
    manual = {"data": {"MANUAL": _b64("m")}}
    patched = cluster.http.patch(
        secrets_path(namespace, "mixed"),
        json=manual,
        params={"fieldManager": "person"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200

    answer = apply(cluster, namespace, "mixed", {"data": {"A": _b64("1")}}, manager="kubestash")

    assert answer.json()["data"] == {"A": _b64("1"), "MANUAL": _b64("m")}


def test_field_owned_by_another_manager_survives_prune(cluster, namespace):
    apply(cluster, namespace, "shared", {"data": {"A": _b64("1")}}, manager="kubestash")
    apply(cluster, namespace, "shared", {"data": {"A": _b64("1")}}, manager="other")

    answer = apply(cluster, namespace, "shared", {"data": {"B": _b64("2")}}, manager="kubestash")

    assert answer.json()["data"] == {"A": _b64("1"), "B": _b64("2")}
    assert owners(answer.json())[("other", "Apply")] == {"f:data": {"f:A": {}}}


def test_same_value_from_two_managers_is_shared(cluster, namespace):
    apply(cluster, namespace, "co", {"data": {"A": _b64("1")}}, manager="first")
    answer = apply(cluster, namespace, "co", {"data": {"A": _b64("1")}}, manager="second")

    assert answer.status_code == 200
    fields = owners(answer.json())
    assert fields[("first", "Apply")] == {"f:data": {"f:A": {}}}
    assert fields[("second", "Apply")] == {"f:data": {"f:A": {}}}


def test_conflicting_apply_is_rejected_with_causes(cluster, namespace):
    apply(cluster, namespace, "clash", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="first")
    body = {"data": {"A": _b64("x"), "B": _b64("y")}}
    answer = apply(cluster, namespace, "clash", body, manager="second")

    assert answer.status_code == 409
    status = answer.json()
    assert status["reason"] == "Conflict"
    assert status["message"].startswith('Apply failed with 2 conflicts: conflicts with "first":')
    causes = status["details"]["causes"]
    assert {cause["field"] for cause in causes} == {".data.A", ".data.B"}
    assert {cause["reason"] for cause in causes} == {"FieldManagerConflict"}
    assert {cause["message"] for cause in causes} == {'conflict with "first"'}


def test_conflict_with_update_manager_names_api_version(cluster, namespace):
    created = cluster.http.post(
        secrets_path(namespace),
        json={"metadata": {"name": "upd"}, "data": {"A": _b64("1")}},
        params={"fieldManager": "creator"},
    )
    assert created.status_code == 201

    answer = apply(cluster, namespace, "upd", {"data": {"A": _b64("2")}}, manager="kubestash")

    assert answer.status_code == 409
    assert answer.json()["message"] == (
        'Apply failed with 1 conflict: conflict with "creator" using v1: .data.A'
    )


def test_conflict_changes_nothing(cluster, namespace):
    apply(cluster, namespace, "keep", {"data": {"A": _b64("1")}}, manager="first")
    before = _get(cluster, namespace, "keep")

    apply(cluster, namespace, "keep", {"data": {"A": _b64("2")}}, manager="second")

    after = _get(cluster, namespace, "keep")
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_force_takes_field_over(cluster, namespace):
    apply(cluster, namespace, "force", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="first")
    answer = apply(
        cluster, namespace, "force", {"data": {"A": _b64("x")}}, manager="second", force=True
    )

    assert answer.status_code == 200
    assert answer.json()["data"]["A"] == _b64("x")
    fields = owners(answer.json())
    assert fields[("second", "Apply")] == {"f:data": {"f:A": {}}}
    assert fields[("first", "Apply")] == {"f:data": {"f:B": {}}}


def test_update_moves_changed_field_to_updater(cluster, namespace):
    apply(
        cluster, namespace, "moved", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="kubestash"
    )
    patched = cluster.http.patch(
        secrets_path(namespace, "moved"),
        json={"data": {"A": _b64("changed")}},
        params={"fieldManager": "person"},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    fields = owners(patched.json())
    assert fields[("person", "Update")] == {"f:data": {"f:A": {}}}
    assert fields[("kubestash", "Apply")] == {"f:data": {"f:B": {}}}


def test_field_lost_to_updater_is_not_pruned(cluster, namespace):
    apply(
        cluster, namespace, "lost", {"data": {"A": _b64("1"), "B": _b64("2")}}, manager="kubestash"
    )
    cluster.http.patch(
        secrets_path(namespace, "lost"),
        json={"data": {"A": _b64("changed")}},
        params={"fieldManager": "person"},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    answer = apply(cluster, namespace, "lost", {"data": {"B": _b64("2")}}, manager="kubestash")

    assert answer.json()["data"] == {"A": _b64("changed"), "B": _b64("2")}


def test_unchanged_apply_keeps_resource_version(cluster, namespace):
    first = apply(cluster, namespace, "same", {"data": {"A": _b64("1")}}, manager="kubestash")
    second = apply(cluster, namespace, "same", {"data": {"A": _b64("1")}}, manager="kubestash")

    assert second.status_code == 200
    assert (
        second.json()["metadata"]["resourceVersion"] == first.json()["metadata"]["resourceVersion"]
    )
    assert second.json()["metadata"]["managedFields"] == first.json()["metadata"]["managedFields"]


def test_apply_labels_and_annotations_per_key(cluster, namespace):
    apply(cluster, namespace, "meta", {"metadata": {"labels": {"a": "1"}}}, manager="first")
    apply(cluster, namespace, "meta", {"metadata": {"labels": {"b": "2"}}}, manager="second")

    answer = apply(
        cluster, namespace, "meta", {"metadata": {"annotations": {"n": "x"}}}, manager="first"
    )

    assert answer.json()["metadata"]["labels"] == {"b": "2"}
    assert answer.json()["metadata"]["annotations"] == {"n": "x"}


def test_apply_with_stale_resource_version_conflicts(cluster, namespace):
    first = apply(cluster, namespace, "rv", {"data": {"A": _b64("1")}}, manager="kubestash")
    stale = first.json()["metadata"]["resourceVersion"]
    apply(cluster, namespace, "rv", {"data": {"A": _b64("2")}}, manager="kubestash")

    body = {"metadata": {"resourceVersion": stale}, "data": {"A": _b64("3")}}
    answer = apply(cluster, namespace, "rv", body, manager="kubestash")

    assert answer.status_code == 409
    assert answer.json()["reason"] == "Conflict"


def test_apply_of_undeclared_field_fails(cluster, namespace):
    answer = apply(cluster, namespace, "undeclared", {"spec": {"x": 1}}, manager="kubestash")

    assert answer.status_code == 500
    assert ".spec: field not declared in schema" in answer.json()["message"]


def test_apply_with_wrong_kind_is_rejected(cluster, namespace):
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}}
    answer = cluster.http.patch(
        secrets_path(namespace, "k"),
        content=json.dumps(document),
        params={"fieldManager": "kubestash"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )

    assert answer.status_code == 400


def test_apply_in_missing_namespace_is_not_found(cluster):
    answer = apply(cluster, "kubeapi-conf-missing", "x", {"data": {}}, manager="kubestash")

    assert answer.status_code == 404
    assert answer.json()["details"] == {"name": "kubeapi-conf-missing", "kind": "namespaces"}


def test_emptied_secret_stays_with_no_data(cluster, namespace):
    apply(cluster, namespace, "empty", {"data": {"A": _b64("1")}}, manager="kubestash")
    answer = apply(cluster, namespace, "empty", {}, manager="kubestash")

    assert answer.status_code == 200
    assert "data" not in answer.json()
    assert _get(cluster, namespace, "empty")["type"] == "Opaque"
