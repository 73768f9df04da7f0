"""JSON patch, merge patch and strategic merge patch on Secrets."""

from __future__ import annotations

from kubeapi_support import secrets_path


def _create(cluster, namespace: str, name: str, **body) -> dict:
    answer = cluster.http.post(secrets_path(namespace), json={"metadata": {"name": name}, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _patch(cluster, namespace: str, name: str, patch, kind: str, **params):
    return cluster.http.patch(
        secrets_path(namespace, name),
        json=patch,
        params=params,
        headers={"Content-Type": f"application/{kind}+json"},
    )


def test_merge_patch_null_removes_key(cluster, namespace):
    _create(cluster, namespace, "m", data={"A": "MQ==", "B": "Mg=="})
    answer = _patch(cluster, namespace, "m", {"data": {"A": None}}, "merge-patch")

    assert answer.status_code == 200
    assert answer.json()["data"] == {"B": "Mg=="}


def test_strategic_patch_merges_maps(cluster, namespace):
    _create(
        cluster, namespace, "s", data={"A": "MQ=="}, metadata={"name": "s", "labels": {"a": "1"}}
    )
    patch = {"metadata": {"labels": {"b": "2"}}, "data": {"B": "Mg=="}}
    answer = _patch(cluster, namespace, "s", patch, "strategic-merge-patch")

    assert answer.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert answer.json()["data"] == {"A": "MQ==", "B": "Mg=="}


def test_strategic_patch_merges_finalizers(cluster, namespace):
    _create(cluster, namespace, "f", metadata={"name": "f", "finalizers": ["example.com/a"]})
    patch = {"metadata": {"finalizers": ["example.com/b"]}}
    answer = _patch(cluster, namespace, "f", patch, "strategic-merge-patch")

    assert answer.json()["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    _patch(cluster, namespace, "f", {"metadata": {"finalizers": None}}, "merge-patch")


def test_strategic_patch_replace_directive(cluster, namespace):
    _create(cluster, namespace, "r", data={"A": "MQ==", "B": "Mg=="})
    patch = {"data": {"$patch": "replace", "C": "Mw=="}}
    answer = _patch(cluster, namespace, "r", patch, "strategic-merge-patch")

    assert answer.json()["data"] == {"C": "Mw=="}


def test_json_patch_operations(cluster, namespace):
    _create(cluster, namespace, "j", data={"A": "MQ=="})
    patch = [
        {"op": "test", "path": "/data/A", "value": "MQ=="},
        {"op": "add", "path": "/data/B", "value": "Mg=="},
        {"op": "remove", "path": "/data/A"},
    ]
    answer = _patch(cluster, namespace, "j", patch, "json-patch")

    assert answer.status_code == 200
    assert answer.json()["data"] == {"B": "Mg=="}


def test_failed_json_patch_test_is_unprocessable(cluster, namespace):
    _create(cluster, namespace, "j", data={"A": "MQ=="})
    patch = [{"op": "test", "path": "/data/A", "value": "other"}]
    answer = _patch(cluster, namespace, "j", patch, "json-patch")

    assert answer.status_code == 422


def test_patch_of_missing_secret_is_not_found(cluster, namespace):
    answer = _patch(cluster, namespace, "absent", {"data": {}}, "merge-patch")

    assert answer.status_code == 404


def test_patch_with_stale_resource_version_conflicts(cluster, namespace):
    created = _create(cluster, namespace, "p", data={"A": "MQ=="})
    _patch(cluster, namespace, "p", {"data": {"A": "Mg=="}}, "merge-patch")
    stale = {
        "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
        "data": {"A": "Mw=="},
    }
    answer = _patch(cluster, namespace, "p", stale, "merge-patch")

    assert answer.status_code == 409


def test_patch_with_force_is_rejected(cluster, namespace):
    _create(cluster, namespace, "p")
    answer = _patch(cluster, namespace, "p", {}, "merge-patch", force="true")

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "force"
