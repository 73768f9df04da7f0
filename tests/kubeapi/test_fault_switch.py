"""The fault switch and the request log of the test server (not on a real cluster)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest
from kubeapi_support import secrets_path

from renderer.testing.kubeapi import RequestRecord


@pytest.fixture
def http(local_server):
    with httpx.Client(base_url=local_server.url, timeout=5) as client:
        yield client


def test_status_429_carries_retry_after(local_server, http):
    rule = {
        "verb": "list",
        "path": "/secrets$",
        "action": "status",
        "status": 429,
        "retry_after_seconds": 3,
    }
    added = http.post("/_faults", json=rule)
    assert added.status_code == 201

    answer = http.get(secrets_path("default"))

    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "3"
    assert answer.json()["reason"] == "TooManyRequests"
    assert answer.json()["details"]["retryAfterSeconds"] == 3


def test_status_500_is_internal_error(local_server, http):
    local_server.faults.add({"verb": "create", "action": "status", "status": 500, "count": 1})

    answer = http.post(secrets_path("default"), json={"metadata": {"name": "x"}})

    assert answer.status_code == 500
    assert answer.json()["reason"] == "InternalError"
    assert http.get(secrets_path("default", "x")).status_code == 404


def test_count_limits_hits(local_server, http):
    local_server.faults.add({"verb": "get", "action": "status", "status": 500, "count": 2})

    codes = [http.get("/api/v1/namespaces/default").status_code for _ in range(3)]

    assert codes == [500, 500, 200]


def test_window_limits_time(local_server, http):
    local_server.faults.add(
        {"verb": "get", "action": "status", "status": 503, "window_seconds": 0.3}
    )

    during = http.get("/api/v1/namespaces/default").status_code
    time.sleep(0.4)
    after = http.get("/api/v1/namespaces/default").status_code

    assert during == 503
    assert after == 200


def test_verb_and_path_must_both_match(local_server, http):
    local_server.faults.add(
        {"verb": "patch", "path": "/secrets/", "action": "status", "status": 500}
    )
    http.post(secrets_path("default"), json={"metadata": {"name": "x"}})

    read = http.get(secrets_path("default", "x"))
    namespace_patch = http.patch(
        "/api/v1/namespaces/default",
        json={"metadata": {"labels": {"a": "b"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    secret_patch = http.patch(
        secrets_path("default", "x"),
        json={"metadata": {"labels": {"a": "b"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert read.status_code == 200
    assert namespace_patch.status_code == 200
    assert secret_patch.status_code == 500


def test_delay_then_serves(local_server, http):
    local_server.faults.add({"verb": "get", "action": "delay", "delay_seconds": 0.3, "count": 1})
    started = time.monotonic()

    answer = http.get("/api/v1/namespaces/default")

    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_drop_closes_connection(local_server, http):
    local_server.faults.add({"verb": "get", "action": "drop", "count": 1})

    with pytest.raises(httpx.TransportError):
        http.get("/api/v1/namespaces/default")
    assert http.get("/api/v1/namespaces/default").status_code == 200


def test_hang_holds_until_client_timeout(local_server):
    local_server.faults.add({"verb": "get", "action": "hang", "delay_seconds": 2, "count": 1})

    with httpx.Client(base_url=local_server.url, timeout=0.3) as impatient:
        with pytest.raises(httpx.TimeoutException):
            impatient.get("/api/v1/namespaces/default")


def test_clear_removes_rules(local_server, http):
    http.post("/_faults", json={"action": "status", "status": 500})
    assert http.get("/api/v1/namespaces").status_code == 500

    assert http.delete("/_faults").status_code == 200

    assert http.get("/api/v1/namespaces").status_code == 200
    assert http.get("/_faults").json() == {"rules": []}


def test_delete_one_rule(local_server, http):
    added = http.post(
        "/_faults", json=[{"verb": "list", "action": "status"}, {"verb": "get", "action": "status"}]
    )
    first_id = added.json()["rules"][0]["id"]

    assert http.delete(f"/_faults/{first_id}").status_code == 200

    remaining = http.get("/_faults").json()["rules"]
    assert [rule["verb"] for rule in remaining] == ["get"]


def test_rules_report_hits(local_server, http):
    local_server.faults.add({"verb": "get", "action": "status", "status": 500, "count": 5})
    http.get("/api/v1/namespaces/default")
    http.get("/api/v1/namespaces/default")

    rule = http.get("/_faults").json()["rules"][0]
    assert rule["hits"] == 2
    assert rule["active"] is True


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "explode"},
        {"action": "delay"},
        {"action": "status", "status": 42},
        {"action": "status", "path": "("},
        {"action": "status", "colour": "red"},
    ],
)
def test_invalid_rule_is_rejected(local_server, http, rule):
    answer = http.post("/_faults", json=rule)

    assert answer.status_code == 400
    assert answer.json()["error"]


def test_request_log_uses_rbac_verbs(local_server, http):
    path = secrets_path("default")
    http.post(path, json={"metadata": {"name": "x"}})
    http.get(path)
    http.get(path + "/x")
    http.patch(path + "/x", json={}, headers={"Content-Type": "application/merge-patch+json"})
    http.put(path + "/x", json={"metadata": {"name": "x"}})
    http.delete(path + "/x")
    http.delete(path)
    with http.stream("GET", path, params={"watch": "1", "timeoutSeconds": "0"}):
        pass
    http.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/absent")

    assert local_server.requests == [
        ("create", "", "secrets", "", "default", "", 201),
        ("list", "", "secrets", "", "default", "", 200),
        ("get", "", "secrets", "", "default", "x", 200),
        ("patch", "", "secrets", "", "default", "x", 200),
        ("update", "", "secrets", "", "default", "x", 200),
        ("delete", "", "secrets", "", "default", "x", 200),
        ("deletecollection", "", "secrets", "", "default", "", 200),
        ("watch", "", "secrets", "", "default", "", 200),
        ("get", "coordination.k8s.io", "leases", "", "default", "absent", 404),
    ]
    assert isinstance(local_server.requests[0], RequestRecord)
    assert http.get("/_requests").json()["requests"][0]["verb"] == "create"


def test_reset_restores_start_state(local_server, http):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "extra"}})
    local_server.faults.add({"verb": "delete", "action": "status"})

    assert http.post("/_reset").status_code == 200

    names = [item["metadata"]["name"] for item in http.get("/api/v1/namespaces").json()["items"]]
    assert names == ["default", "kube-public", "kube-system"]
    assert local_server.faults.rules() == []
    assert local_server.requests == [("list", "", "namespaces", "", "", "", 200)]


def test_module_runs_as_process(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "renderer.testing.kubeapi",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert kubeconfig.exists()
        assert httpx.get(url + "/api/v1/namespaces/default").status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_fixtures_give_reset_server(kubeapi, kubeconfig):
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    names = [item.metadata.name for item in api.list_namespace().items]

    assert names == ["default", "kube-public", "kube-system"]
    assert kubeapi.requests == [("list", "", "namespaces", "", "", "", 200)]


def test_reset_ends_open_watches(local_server, http):
    params = {"watch": "true", "timeoutSeconds": "30"}
    started = time.monotonic()
    with http.stream("GET", secrets_path("default"), params=params) as answer:
        threading.Timer(0.3, local_server.reset).start()
        lines = [line for line in answer.iter_lines() if line]

    assert lines == []
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "Forbidden"), (409, "Conflict"), (503, "ServiceUnavailable"), (504, "Timeout")],
)
def test_status_fault_uses_standard_reason(local_server, http, status, reason):
    local_server.faults.add({"verb": "get", "action": "status", "status": status, "count": 1})

    answer = http.get("/api/v1/namespaces/default")

    assert answer.status_code == status
    assert answer.json()["reason"] == reason
    assert answer.json()["code"] == status
