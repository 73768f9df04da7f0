"""managedFields of Update operations (create, PUT, patches), in the FieldsV1 format."""

from __future__ import annotations

from kubeapi_support import apply, owners, secrets_path


def _create(cluster, namespace: str, name: str, manager: str, **body) -> dict:
    document = {"metadata": {"name": name, **body.pop("metadata", {})}, **body}
    answer = cluster.http.post(
        secrets_path(namespace), json=document, params={"fieldManager": manager}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _merge_patch(cluster, namespace: str, name: str, patch: dict, manager: str | None) -> dict:
    params = {"fieldManager": manager} if manager else {}
    answer = cluster.http.patch(
        secrets_path(namespace, name),
        json=patch,
        params=params,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_create_owns_added_maps_and_keys(cluster, namespace):
    created = _create(
        cluster, namespace, "c", "creator", metadata={"labels": {"app": "x"}}, data={"A": "MQ=="}
    )

    entry = created["metadata"]["managedFields"][0]
    assert entry["operation"] == "Update"
    assert entry["manager"] == "creator"
    assert entry["fieldsV1"] == {
        "f:data": {".": {}, "f:A": {}},
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:type": {},
    }


def test_update_entries_of_one_manager_merge(cluster, namespace):
    _create(cluster, namespace, "m", "tool", data={"A": "MQ=="})
    patched = _merge_patch(cluster, namespace, "m", {"metadata": {"labels": {"x": "y"}}}, "tool")

    entries = patched["metadata"]["managedFields"]
    assert len(entries) == 1
    assert entries[0]["fieldsV1"] == {
        "f:data": {".": {}, "f:A": {}},
        "f:metadata": {"f:labels": {".": {}, "f:x": {}}},
        "f:type": {},
    }


def test_added_key_in_existing_map_has_no_dot(cluster, namespace):
    _create(cluster, namespace, "k", "creator", data={"A": "MQ=="})
    patched = _merge_patch(cluster, namespace, "k", {"data": {"B": "Mg=="}}, "adder")

    assert owners(patched)[("adder", "Update")] == {"f:data": {"f:B": {}}}


def test_stringdata_is_owned_as_data(cluster, namespace):
    created = _create(cluster, namespace, "sd", "creator", stringData={"S": "plain"})

    assert created["data"] == {"S": "cGxhaW4="}
    assert "stringData" not in created
    assert owners(created)[("creator", "Update")]["f:data"] == {".": {}, "f:S": {}}


def test_manager_defaults_to_user_agent_prefix(cluster, namespace):
    answer = cluster.http.post(
        secrets_path(namespace),
        json={"metadata": {"name": "ua"}},
        headers={"User-Agent": "sync-tool/1.2 (linux)"},
    )

    assert answer.json()["metadata"]["managedFields"][0]["manager"] == "sync-tool"


def test_unchanged_update_adds_no_entry(cluster, namespace):
    created = _create(cluster, namespace, "same", "creator", data={"A": "MQ=="})
    patched = _merge_patch(cluster, namespace, "same", {"data": {"A": "MQ=="}}, "idle")

    assert ("idle", "Update") not in owners(patched)
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_removing_all_fields_drops_entry(cluster, namespace):
    _create(cluster, namespace, "drop", "creator", data={"A": "MQ=="})
    _merge_patch(cluster, namespace, "drop", {"metadata": {"labels": {"l": "v"}}}, "labeler")
    patched = _merge_patch(cluster, namespace, "drop", {"metadata": {"labels": None}}, "remover")

    managers = {manager for manager, _ in owners(patched)}
    assert "labeler" not in managers
    assert "remover" not in managers


def test_entries_list_apply_before_update(cluster, namespace):
    _create(cluster, namespace, "order", "creator", data={"A": "MQ=="})
    applied = apply(cluster, namespace, "order", {"data": {"B": "Mg=="}}, manager="kubestash")

    operations = [entry["operation"] for entry in applied.json()["metadata"]["managedFields"]]
    assert operations == ["Apply", "Update"]


def test_managed_fields_reset_with_one_empty_entry(cluster, namespace):
    _create(cluster, namespace, "reset", "creator", data={"A": "MQ=="})
    answer = cluster.http.patch(
        secrets_path(namespace, "reset"),
        json=[{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}],
        headers={"Content-Type": "application/json-patch+json"},
    )

    assert answer.status_code == 200
    assert "managedFields" not in answer.json()["metadata"]


def test_empty_managed_fields_list_is_ignored(cluster, namespace):
    created = _create(cluster, namespace, "keep", "creator", data={"A": "MQ=="})
    body = dict(created)
    body["metadata"] = {**created["metadata"], "managedFields": []}
    answer = cluster.http.put(secrets_path(namespace, "keep"), json=body)

    assert answer.status_code == 200
    assert answer.json()["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_first_apply_on_object_without_managed_fields(cluster, namespace):
    _create(cluster, namespace, "bare", "creator", data={"A": "MQ=="})
    cluster.http.patch(
        secrets_path(namespace, "bare"),
        json=[{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}],
        headers={"Content-Type": "application/json-patch+json"},
    )

    answer = apply(cluster, namespace, "bare", {"data": {"B": "Mg=="}}, manager="kubestash")

    fields = owners(answer.json())
    assert fields[("before-first-apply", "Update")]["f:data"]["f:A"] == {}
    assert answer.json()["data"] == {"A": "MQ==", "B": "Mg=="}


def test_eleven_update_managers_fold_oldest(cluster, namespace):
    _create(cluster, namespace, "many", "manager-00", data={"A": "MQ=="})
    for index in range(1, 11):
        patch = {"metadata": {"labels": {f"label-{index:02d}": "x"}}}
        _merge_patch(cluster, namespace, "many", patch, f"manager-{index:02d}")

    stored = cluster.http.get(secrets_path(namespace, "many")).json()
    managers = [entry["manager"] for entry in stored["metadata"]["managedFields"]]

    assert len(managers) == 10
    assert "ancient-changes" in managers
    assert "manager-10" in managers
