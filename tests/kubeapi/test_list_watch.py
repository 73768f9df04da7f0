"""List with selectors and chunking, and watch with resource versions and bookmarks."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from kubeapi_support import secrets_path

from renderer.testing.kubeapi import KubeAPIServer


def _create(cluster, namespace: str, name: str, labels: dict | None = None, **body) -> dict:
    document = {"metadata": {"name": name, "labels": labels or {}}, **body}
    answer = cluster.http.post(secrets_path(namespace), json=document)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["metadata"]["name"] for item in answer.json()["items"]]


@pytest.fixture
def labelled(cluster, namespace):
    _create(cluster, namespace, "a", {"tier": "web", "env": "prod"})
    _create(cluster, namespace, "b", {"tier": "db", "env": "prod"})
    _create(cluster, namespace, "c", {"tier": "web"})
    _create(cluster, namespace, "d", type="example.com/special")
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "c"]),
        ("tier==web", ["a", "c"]),
        ("tier!=web", ["b", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["b", "d"]),
        ("env", ["a", "b"]),
        ("!env", ["c", "d"]),
        ("tier=web,env=prod", ["a"]),
        ("tier in (web), !env", ["c"]),
    ],
)
def test_label_selector(cluster, labelled, selector, expected):
    answer = cluster.http.get(secrets_path(labelled), params={"labelSelector": selector})

    assert _names(answer) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=b", ["b"]),
        ("metadata.name!=b", ["a", "c", "d"]),
        ("type=example.com/special", ["d"]),
        ("type!=Opaque", ["d"]),
    ],
)
def test_field_selector(cluster, labelled, selector, expected):
    answer = cluster.http.get(secrets_path(labelled), params={"fieldSelector": selector})

    assert _names(answer) == expected


def test_field_selector_on_namespace(cluster, labelled):
    answer = cluster.http.get(
        "/api/v1/secrets", params={"fieldSelector": f"metadata.namespace={labelled}"}
    )

    assert _names(answer) == ["a", "b", "c", "d"]


def test_unsupported_field_selector_is_bad_request(cluster, labelled):
    answer = cluster.http.get(secrets_path(labelled), params={"fieldSelector": "data.A=x"})

    assert answer.status_code == 400
    assert answer.json()["message"] == "field label not supported: data.A"


def test_malformed_label_selector_is_bad_request(cluster, labelled):
    answer = cluster.http.get(secrets_path(labelled), params={"labelSelector": "tier in web"})

    assert answer.status_code == 400


def test_list_carries_kind_and_resource_version(cluster, labelled):
    answer = cluster.http.get(secrets_path(labelled))

    body = answer.json()
    assert body["kind"] == "SecretList"
    assert body["apiVersion"] == "v1"
    assert int(body["metadata"]["resourceVersion"]) > 0


def test_chunked_list_returns_every_item_once(cluster, namespace):
    for index in range(7):
        _create(cluster, namespace, f"s{index}")
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"limit": "3"}
        if token:
            params["continue"] = token
        body = cluster.http.get(secrets_path(namespace), params=params).json()
        names += [item["metadata"]["name"] for item in body["items"]]
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break

    assert names == [f"s{index}" for index in range(7)]
    assert pages == 3


def test_chunked_list_counts_remaining_items(cluster, namespace):
    for index in range(5):
        _create(cluster, namespace, f"s{index}")
    body = cluster.http.get(secrets_path(namespace), params={"limit": "2"}).json()

    assert body["metadata"]["remainingItemCount"] == 3
    assert body["metadata"]["continue"]


def test_chunked_list_keeps_first_resource_version(cluster, namespace):
    for index in range(3):
        _create(cluster, namespace, f"s{index}")
    first = cluster.http.get(secrets_path(namespace), params={"limit": "2"}).json()
    params = {"limit": "2", "continue": first["metadata"]["continue"]}
    second = cluster.http.get(secrets_path(namespace), params=params).json()

    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_all_namespaces_list_spans_namespaces(cluster, namespace):
    _create(cluster, namespace, "mine")
    answer = cluster.http.get("/api/v1/secrets", params={"labelSelector": "!nothing-has-this"})

    namespaces = {item["metadata"]["namespace"] for item in answer.json()["items"]}
    assert namespace in namespaces


def _watch_lines(cluster, path: str, params: dict, count: int, action=None) -> list[dict]:
    """Read `count` events from a watch, running `action` once the stream is open."""
    events: list[dict] = []
    with cluster.http.stream("GET", path, params={"watch": "true", **params}) as answer:
        assert answer.status_code == 200
        if action is not None:
            threading.Timer(0.2, action).start()
        for line in answer.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def test_watch_from_resource_version_sees_later_changes(cluster, namespace):
    created = _create(cluster, namespace, "w", data={"A": "MQ=="})
    version = created["metadata"]["resourceVersion"]

    def change():
        cluster.http.patch(
            secrets_path(namespace, "w"),
            json={"data": {"A": "Mg=="}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        cluster.http.delete(secrets_path(namespace, "w"))

    params = {"resourceVersion": version, "timeoutSeconds": "10"}
    events = _watch_lines(cluster, secrets_path(namespace), params, 2, change)

    assert [event["type"] for event in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["kind"] == "Secret"
    assert events[0]["object"]["data"] == {"A": "Mg=="}


def test_watch_without_resource_version_starts_with_added(cluster, namespace):
    _create(cluster, namespace, "x")
    _create(cluster, namespace, "y")
    events = _watch_lines(cluster, secrets_path(namespace), {"timeoutSeconds": "10"}, 2)

    assert {(event["type"], event["object"]["metadata"]["name"]) for event in events} == {
        ("ADDED", "x"),
        ("ADDED", "y"),
    }


def test_watch_with_label_selector_reports_leaving_as_deleted(cluster, namespace):
    created = _create(cluster, namespace, "sel", {"watched": "yes"})

    def relabel():
        cluster.http.patch(
            secrets_path(namespace, "sel"),
            json={"metadata": {"labels": {"watched": "no"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )

    params = {
        "resourceVersion": created["metadata"]["resourceVersion"],
        "labelSelector": "watched=yes",
        "timeoutSeconds": "10",
    }
    events = _watch_lines(cluster, secrets_path(namespace), params, 1, relabel)

    assert events[0]["type"] == "DELETED"


def test_watch_all_namespaces(cluster, namespace):
    version = cluster.http.get(secrets_path(namespace)).json()["metadata"]["resourceVersion"]

    def create():
        _create(cluster, namespace, "anywhere")

    params = {
        "resourceVersion": version,
        "fieldSelector": f"metadata.namespace={namespace}",
        "timeoutSeconds": "10",
    }
    events = _watch_lines(cluster, "/api/v1/secrets", params, 1, create)

    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["namespace"] == namespace


def test_watch_times_out(cluster, namespace):
    version = cluster.http.get(secrets_path(namespace)).json()["metadata"]["resourceVersion"]
    started = time.monotonic()
    params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "1"}
    with cluster.http.stream("GET", secrets_path(namespace), params=params) as answer:
        lines = [line for line in answer.iter_lines() if line]

    assert lines == []
    assert time.monotonic() - started < 10


@pytest.fixture
def small_server(cluster, tmp_path):
    """A server of its own with a short history and frequent bookmarks."""
    if not cluster.is_test_server:
        pytest.skip("needs the Kubernetes API test server (history size and bookmark interval)")
    with KubeAPIServer(port=0, history_size=5, bookmark_interval=0.2) as server:
        yield server


def test_watch_from_compacted_version_is_gone(small_server):
    with httpx.Client(base_url=small_server.url) as http:
        path = secrets_path("default")
        for index in range(20):
            http.post(path, json={"metadata": {"name": f"s{index}"}})
        params = {"watch": "true", "resourceVersion": "2"}
        with http.stream("GET", path, params=params) as answer:
            event = json.loads(next(answer.iter_lines()))

    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith("too old resource version: 2 (")


def test_watch_sends_bookmarks(small_server):
    with httpx.Client(base_url=small_server.url) as http:
        path = secrets_path("default")
        version = http.get(path).json()["metadata"]["resourceVersion"]
        params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
        with http.stream("GET", path, params=params) as answer:
            event = json.loads(next(answer.iter_lines()))

    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "Secret"
    assert event["object"]["metadata"]["resourceVersion"] == version


def test_watch_initial_events_end_with_bookmark(small_server):
    with httpx.Client(base_url=small_server.url) as http:
        path = secrets_path("default")
        http.post(path, json={"metadata": {"name": "one"}})
        params = {
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
        }
        with http.stream("GET", path, params=params) as answer:
            lines = answer.iter_lines()
            first = json.loads(next(lines))
            second = json.loads(next(lines))

    assert first["type"] == "ADDED"
    assert second["type"] == "BOOKMARK"
    annotations = second["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_python_client_watch_raises_gone(small_server, tmp_path):
    from kubernetes import client, config, watch
    from kubernetes.client.exceptions import ApiException

    with httpx.Client(base_url=small_server.url) as http:
        for index in range(20):
            http.post(secrets_path("default"), json={"metadata": {"name": f"s{index}"}})
    path = small_server.write_kubeconfig(tmp_path / "kubeconfig")
    api = client.CoreV1Api(config.new_client_from_config(str(path)))

    with pytest.raises(ApiException) as raised:
        for _ in watch.Watch().stream(
            api.list_namespaced_secret, "default", resource_version="2", timeout_seconds=5
        ):
            pass
    assert raised.value.status == 410


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_table_list_has_secret_columns(cluster, namespace):
    _create(cluster, namespace, "t", data={"A": "MQ==", "B": "Mg=="})
    answer = cluster.http.get(secrets_path(namespace), headers={"Accept": TABLE})

    table = answer.json()
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    columns = [column["name"] for column in table["columnDefinitions"]]
    assert columns == ["Name", "Type", "Data", "Age"]
    assert table["rows"][0]["cells"][:3] == ["t", "Opaque", 2]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_chunked_list_pages_show_first_page_state(cluster, namespace):
    for index in range(5):
        _create(cluster, namespace, f"s{index}", {"round": "first"})
    first = cluster.http.get(secrets_path(namespace), params={"limit": "2"}).json()
    cluster.http.delete(secrets_path(namespace, "s3"))
    _create(cluster, namespace, "s5")
    cluster.http.patch(
        secrets_path(namespace, "s2"),
        json={"metadata": {"labels": {"round": "second"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    params = {"limit": "10", "continue": first["metadata"]["continue"]}
    rest = cluster.http.get(secrets_path(namespace), params=params).json()

    assert [item["metadata"]["name"] for item in rest["items"]] == ["s2", "s3", "s4"]
    assert rest["items"][0]["metadata"]["labels"] == {"round": "first"}


def test_exact_resource_version_lists_past_state(cluster, namespace):
    _create(cluster, namespace, "before", {"round": "first"})
    version = cluster.http.get(secrets_path(namespace)).json()["metadata"]["resourceVersion"]
    _create(cluster, namespace, "after")
    cluster.http.patch(
        secrets_path(namespace, "before"),
        json={"metadata": {"labels": {"round": "second"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    params = {"resourceVersion": version, "resourceVersionMatch": "Exact"}
    answer = cluster.http.get(secrets_path(namespace), params=params)

    body = answer.json()
    assert body["metadata"]["resourceVersion"] == version
    assert [item["metadata"]["name"] for item in body["items"]] == ["before"]
    assert body["items"][0]["metadata"]["labels"] == {"round": "first"}


@pytest.mark.parametrize(
    "params",
    [
        {"resourceVersionMatch": "Exact"},
        {"resourceVersion": "0", "resourceVersionMatch": "Exact"},
        {"resourceVersion": "1", "resourceVersionMatch": "Sometime"},
    ],
)
def test_invalid_list_options_are_rejected(cluster, namespace, params):
    answer = cluster.http.get(secrets_path(namespace), params=params)

    assert answer.status_code == 422
    assert answer.json()["details"]["kind"] == "ListOptions"


def test_future_resource_version_times_out(cluster, namespace):
    version = cluster.http.get(secrets_path(namespace)).json()["metadata"]["resourceVersion"]
    future = str(int(version) + 1_000_000)
    answer = cluster.http.get(secrets_path(namespace), params={"resourceVersion": future})

    assert answer.status_code == 504
    assert answer.json()["message"].startswith(f"Too large resource version: {future}")


def test_exact_list_past_history_is_gone(small_server):
    with httpx.Client(base_url=small_server.url) as http:
        path = secrets_path("default")
        for index in range(20):
            http.post(path, json={"metadata": {"name": f"s{index}"}})
        params = {"resourceVersion": "2", "resourceVersionMatch": "Exact"}
        answer = http.get(path, params=params)

    assert answer.status_code == 410
    assert answer.json()["reason"] == "Expired"
