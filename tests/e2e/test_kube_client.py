"""KubeClient against the test server's fault switch: retries, pagination, containment."""

from __future__ import annotations

import base64

import pytest

from renderer import kube as kube_module
from renderer import metrics
from renderer.kube import KubeClient, KubeError
from renderer.names import SecretRef
from renderer.settings import Settings


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def requests_with(verb: str, code: str) -> float:
    for sample in metrics.kube_requests_total.collect()[0].samples:
        if sample.name.endswith("_total") and sample.labels == {"verb": verb, "code": code}:
            return sample.value
    return 0.0


def test_throttled_apply_is_retried(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put("test/app/A", "a")
    throttled_before = requests_with("patch", "429")
    kubeapi.faults.add(
        {"verb": "patch", "action": "status", "status": 429, "retry_after_seconds": 1, "count": 1}
    )

    result = syncer.full_sync(trigger="test")

    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}
    assert requests_with("patch", "429") == throttled_before + 1


def test_server_error_on_list_is_retried(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put("test/app/A", "a")
    kubeapi.faults.add({"verb": "list", "action": "status", "status": 503, "count": 2})

    result = syncer.full_sync(trigger="test")

    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_dropped_connection_is_retried(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put("test/app/A", "a")
    kubeapi.faults.add({"verb": "patch", "action": "drop", "count": 1})

    result = syncer.full_sync(trigger="test")

    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_one_failing_secret_does_not_stop_others(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put_many({"test/broken/A": "a", "test/fine/B": "b", "prod/fine/C": "c"})
    kubeapi.faults.add(
        {"verb": "patch", "path": "/secrets/broken$", "action": "status", "status": 500}
    )

    result = syncer.full_sync(trigger="test")

    outcomes = {f"{s.namespace}/{s.name}": s for s in result.secrets}
    assert result.result == "partial"
    assert outcomes["test/broken"].status == "failed"
    assert "500" in outcomes["test/broken"].error
    assert decoded(kubectl.secret("test", "fine")) == {"B": "b"}
    assert decoded(kubectl.secret("prod", "fine")) == {"C": "c"}


def test_failed_list_applies_nothing(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put("test/app/A", "a")
    kubeapi.faults.add({"verb": "list", "path": "/secrets", "action": "status", "status": 403})

    result = syncer.full_sync(trigger="test")

    assert result.result == "failed"
    assert result.step == "compare"
    assert "403" in result.error
    assert kubectl.secret("test", "app") is None


def test_list_follows_continue_tokens(kubeapi, kubeconfig, kubectl, monkeypatch):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    for number in range(5):
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": f"s{number}",
                "namespace": "test",
                "labels": {"app.kubernetes.io/managed-by": "kubestash"},
            },
        }
        kube.request("create", "POST", "/api/v1/namespaces/test/secrets", body=body)
    monkeypatch.setattr(kube_module, "LIST_PAGE_SIZE", 2)
    seen = len(kubeapi.requests)

    secrets = kube.list_managed_secrets()

    lists = [r for r in kubeapi.requests[seen:] if r.verb == "list"]
    assert sorted(s["metadata"]["name"] for s in secrets) == [f"s{n}" for n in range(5)]
    assert len(lists) == 3


def test_list_skips_excluded_namespaces(kubeapi, kubeconfig, kubectl):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    for namespace in ("test", "kube-system"):
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "s",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "kubestash"},
            },
        }
        kube.request("create", "POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)

    secrets = kube.list_managed_secrets(frozenset({"kube-system"}))

    assert [s["metadata"]["namespace"] for s in secrets] == ["test"]


def test_error_carries_status_and_causes(kubeapi, kubeconfig, kubectl):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "Bad_Name", "namespace": "test"},
    }

    with pytest.raises(KubeError) as error:
        kube.apply_secret(body, dry_run=False)

    assert error.value.status == 422
    assert error.value.reason == "Invalid"
    assert error.value.causes


def test_delete_with_stale_resource_version_conflicts(kubeapi, kubeconfig, kubectl):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "test"}}
    created = kube.request("create", "POST", "/api/v1/namespaces/test/secrets", body=body)
    kubectl.run("label", "secret", "s", "-n", "test", "changed=yes")

    with pytest.raises(KubeError) as error:
        kube.delete_secret(
            SecretRef("test", "s"),
            resource_version=created["metadata"]["resourceVersion"],
            dry_run=False,
        )

    assert error.value.status == 409
    assert kubectl.secret("test", "s") is not None


def test_delete_of_missing_secret_returns_false(kubeapi, kubeconfig, kubectl):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))

    deleted = kube.delete_secret(SecretRef("test", "gone"), resource_version=None, dry_run=False)

    assert deleted is False


def test_dry_run_apply_persists_nothing(kubeapi, kubeconfig, kubectl):
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "test"},
        "data": {"A": "YQ=="},
    }

    response = kube.apply_secret(body, dry_run=True)

    assert response["data"] == {"A": "YQ=="}
    assert kubectl.secret("test", "s") is None
