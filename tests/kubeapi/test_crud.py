"""Create, get, update, patch and delete: resource versions, preconditions, dry runs."""

from __future__ import annotations

from kubeapi_support import apply, secrets_path


def _create(cluster, namespace: str, name: str, **body) -> dict:
    answer = cluster.http.post(secrets_path(namespace), json={"metadata": {"name": name}, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_create_sets_system_fields(cluster, namespace):
    created = _create(cluster, namespace, "s", data={"A": "MQ=="})

    meta = created["metadata"]
    assert created["kind"] == "Secret"
    assert created["apiVersion"] == "v1"
    assert meta["namespace"] == namespace
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert created["type"] == "Opaque"


def test_get_returns_created_object(cluster, namespace):
    created = _create(cluster, namespace, "s", data={"A": "MQ=="})
    answer = cluster.http.get(secrets_path(namespace, "s"))

    assert answer.status_code == 200
    assert answer.json()["metadata"]["uid"] == created["metadata"]["uid"]


def test_get_missing_is_not_found(cluster, namespace):
    answer = cluster.http.get(secrets_path(namespace, "absent"))

    assert answer.status_code == 404
    assert answer.json()["message"] == 'secrets "absent" not found'
    assert answer.json()["details"] == {"name": "absent", "kind": "secrets"}


def test_create_twice_already_exists(cluster, namespace):
    _create(cluster, namespace, "dup")
    answer = cluster.http.post(secrets_path(namespace), json={"metadata": {"name": "dup"}})

    assert answer.status_code == 409
    assert answer.json()["reason"] == "AlreadyExists"
    assert answer.json()["message"] == 'secrets "dup" already exists'


def test_create_in_missing_namespace_is_not_found(cluster):
    answer = cluster.http.post(
        secrets_path("kubeapi-conf-nowhere"), json={"metadata": {"name": "x"}}
    )

    assert answer.status_code == 404
    assert answer.json()["message"] == 'namespaces "kubeapi-conf-nowhere" not found'


def test_create_with_resource_version_is_rejected(cluster, namespace):
    body = {"metadata": {"name": "rv", "resourceVersion": "5"}}
    answer = cluster.http.post(secrets_path(namespace), json=body)

    assert answer.status_code == 400


def test_namespace_mismatch_is_rejected(cluster, namespace):
    body = {"metadata": {"name": "x", "namespace": "elsewhere"}}
    answer = cluster.http.post(secrets_path(namespace), json=body)

    assert answer.status_code == 400
    assert "does not match the namespace" in answer.json()["message"]


def test_generate_name_adds_suffix(cluster, namespace):
    answer = cluster.http.post(secrets_path(namespace), json={"metadata": {"generateName": "gen-"}})

    assert answer.status_code == 201
    name = answer.json()["metadata"]["name"]
    assert name.startswith("gen-")
    assert len(name) == len("gen-") + 5


def test_update_changes_resource_version(cluster, namespace):
    created = _create(cluster, namespace, "u", data={"A": "MQ=="})
    created["data"] = {"A": "Mg=="}
    answer = cluster.http.put(secrets_path(namespace, "u"), json=created)

    assert answer.status_code == 200
    assert answer.json()["data"] == {"A": "Mg=="}
    assert int(answer.json()["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )


def test_update_with_stale_resource_version_conflicts(cluster, namespace):
    created = _create(cluster, namespace, "u", data={"A": "MQ=="})
    fresh = dict(created, data={"A": "Mg=="})
    assert cluster.http.put(secrets_path(namespace, "u"), json=fresh).status_code == 200

    stale = dict(created, data={"A": "Mw=="})
    answer = cluster.http.put(secrets_path(namespace, "u"), json=stale)

    assert answer.status_code == 409
    status = answer.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on secrets "u": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert status["details"] == {"name": "u", "kind": "secrets"}


def test_update_without_resource_version_is_unconditional(cluster, namespace):
    _create(cluster, namespace, "u", data={"A": "MQ=="})
    answer = cluster.http.put(
        secrets_path(namespace, "u"), json={"metadata": {"name": "u"}, "data": {"A": "Mg=="}}
    )

    assert answer.status_code == 200


def test_update_of_missing_secret_is_not_found(cluster, namespace):
    answer = cluster.http.put(secrets_path(namespace, "gone"), json={"metadata": {"name": "gone"}})

    assert answer.status_code == 404


def test_update_with_other_name_is_rejected(cluster, namespace):
    _create(cluster, namespace, "u")
    answer = cluster.http.put(secrets_path(namespace, "u"), json={"metadata": {"name": "v"}})

    assert answer.status_code == 400
    assert (
        answer.json()["message"]
        == "the name of the object (v) does not match the name on the URL (u)"
    )


def test_update_keeps_uid_and_creation_timestamp(cluster, namespace):
    created = _create(cluster, namespace, "u")
    answer = cluster.http.put(
        secrets_path(namespace, "u"), json={"metadata": {"name": "u", "labels": {"a": "b"}}}
    )

    assert answer.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert (
        answer.json()["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    )


def test_delete_answers_success_status(cluster, namespace):
    created = _create(cluster, namespace, "d")
    answer = cluster.http.delete(secrets_path(namespace, "d"))

    assert answer.status_code == 200
    status = answer.json()
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["name"] == "d"
    assert status["details"]["kind"] == "secrets"
    assert status["details"]["uid"] == created["metadata"]["uid"]
    assert cluster.http.get(secrets_path(namespace, "d")).status_code == 404


def test_delete_missing_is_not_found(cluster, namespace):
    answer = cluster.http.delete(secrets_path(namespace, "absent"))

    assert answer.status_code == 404


def test_delete_with_wrong_uid_precondition_conflicts(cluster, namespace):
    _create(cluster, namespace, "d")
    options = {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
    answer = cluster.http.request("DELETE", secrets_path(namespace, "d"), json=options)

    assert answer.status_code == 409
    assert "Precondition failed: UID in precondition" in answer.json()["message"]
    assert cluster.http.get(secrets_path(namespace, "d")).status_code == 200


def test_delete_with_stale_resource_version_precondition_conflicts(cluster, namespace):
    created = _create(cluster, namespace, "d")
    cluster.http.patch(
        secrets_path(namespace, "d"),
        json={"metadata": {"labels": {"a": "b"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    options = {"preconditions": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    answer = cluster.http.request("DELETE", secrets_path(namespace, "d"), json=options)

    assert answer.status_code == 409
    assert "Precondition failed: ResourceVersion in precondition" in answer.json()["message"]


def test_delete_with_matching_preconditions(cluster, namespace):
    created = _create(cluster, namespace, "d")
    meta = created["metadata"]
    options = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
    answer = cluster.http.request("DELETE", secrets_path(namespace, "d"), json=options)

    assert answer.status_code == 200


def test_delete_collection_by_label(cluster, namespace):
    _create(cluster, namespace, "a", metadata={"name": "a", "labels": {"group": "x"}})
    _create(cluster, namespace, "b", metadata={"name": "b", "labels": {"group": "x"}})
    _create(cluster, namespace, "c", metadata={"name": "c"})

    answer = cluster.http.delete(secrets_path(namespace), params={"labelSelector": "group=x"})

    assert answer.status_code == 200
    remaining = cluster.http.get(secrets_path(namespace)).json()["items"]
    assert [item["metadata"]["name"] for item in remaining] == ["c"]


def test_finalizer_holds_deletion(cluster, namespace):
    _create(cluster, namespace, "f", metadata={"name": "f", "finalizers": ["example.com/hold"]})
    answer = cluster.http.delete(secrets_path(namespace, "f"))

    assert answer.status_code == 200
    marked = cluster.http.get(secrets_path(namespace, "f")).json()
    assert marked["metadata"]["deletionTimestamp"]

    released = cluster.http.patch(
        secrets_path(namespace, "f"),
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert released.status_code == 200
    assert cluster.http.get(secrets_path(namespace, "f")).status_code == 404


def test_dry_run_create_persists_nothing(cluster, namespace):
    answer = cluster.http.post(
        secrets_path(namespace), json={"metadata": {"name": "dry"}}, params={"dryRun": "All"}
    )

    assert answer.status_code == 201
    assert answer.json()["metadata"]["uid"]
    assert "resourceVersion" not in answer.json()["metadata"]
    assert cluster.http.get(secrets_path(namespace, "dry")).status_code == 404


def test_dry_run_update_keeps_resource_version(cluster, namespace):
    created = _create(cluster, namespace, "dry", data={"A": "MQ=="})
    changed = dict(created, data={"A": "Mg=="})
    answer = cluster.http.put(
        secrets_path(namespace, "dry"), json=changed, params={"dryRun": "All"}
    )

    assert answer.status_code == 200
    assert answer.json()["data"] == {"A": "Mg=="}
    assert answer.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    stored = cluster.http.get(secrets_path(namespace, "dry")).json()
    assert stored["data"] == {"A": "MQ=="}


def test_dry_run_apply_shows_result_and_persists_nothing(cluster, namespace):
    apply(cluster, namespace, "dry", {"data": {"A": "MQ==", "B": "Mg=="}}, manager="kubestash")
    before = cluster.http.get(secrets_path(namespace, "dry")).json()

    answer = apply(
        cluster, namespace, "dry", {"data": {"A": "Mw=="}}, manager="kubestash", dry_run=True
    )

    assert answer.status_code == 200
    assert answer.json()["data"] == {"A": "Mw=="}
    assert answer.json()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert cluster.http.get(secrets_path(namespace, "dry")).json() == before


def test_dry_run_apply_of_missing_secret_creates_nothing(cluster, namespace):
    answer = apply(
        cluster, namespace, "ghost", {"data": {"A": "MQ=="}}, manager="kubestash", dry_run=True
    )

    assert answer.status_code == 201
    assert cluster.http.get(secrets_path(namespace, "ghost")).status_code == 404


def test_dry_run_apply_still_reports_conflicts(cluster, namespace):
    apply(cluster, namespace, "dry", {"data": {"A": "MQ=="}}, manager="first")
    answer = apply(
        cluster, namespace, "dry", {"data": {"A": "Mg=="}}, manager="second", dry_run=True
    )

    assert answer.status_code == 409


def test_dry_run_delete_keeps_object(cluster, namespace):
    _create(cluster, namespace, "dry")
    answer = cluster.http.delete(secrets_path(namespace, "dry"), params={"dryRun": "All"})

    assert answer.status_code == 200
    assert cluster.http.get(secrets_path(namespace, "dry")).status_code == 200


def test_dry_run_patch_keeps_object(cluster, namespace):
    created = _create(cluster, namespace, "dry", data={"A": "MQ=="})
    answer = cluster.http.patch(
        secrets_path(namespace, "dry"),
        json={"data": {"A": None}},
        params={"dryRun": "All"},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert answer.status_code == 200
    assert "data" not in answer.json()
    assert cluster.http.get(secrets_path(namespace, "dry")).json()["data"] == created["data"]


def test_dry_run_delete_collection_keeps_objects(cluster, namespace):
    _create(cluster, namespace, "a")
    _create(cluster, namespace, "b")
    answer = cluster.http.delete(secrets_path(namespace), params={"dryRun": "All"})

    assert answer.status_code == 200
    assert len(cluster.http.get(secrets_path(namespace)).json()["items"]) == 2


def test_dry_run_namespace_delete_keeps_namespace(cluster, namespace):
    _create(cluster, namespace, "inside")
    answer = cluster.http.delete(f"/api/v1/namespaces/{namespace}", params={"dryRun": "All"})

    assert answer.status_code == 200
    stored = cluster.http.get(f"/api/v1/namespaces/{namespace}").json()
    assert stored["status"]["phase"] == "Active"
    assert cluster.http.get(secrets_path(namespace, "inside")).status_code == 200
