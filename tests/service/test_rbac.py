"""The ClusterRole and Role in argocd/deploy grant exactly what a running kubestash uses.

One service with leader election, drift repair, Events and PRUNE runs against the
Kubernetes API test server, which records every request in RBAC terms. Every recorded
request must be allowed by the manifests, and every grant must have been used.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from .conftest import Stack
from .harness import wait_until

REPO = Path(__file__).resolve().parents[2]
LEASE_NAMESPACE = "kubestash"

# Grants that a short run cannot show, each with the reason it is still needed.
NOT_EXERCISED = {
    ("", "secrets", "create"): "a real API server authorizes a server-side apply that "
    "creates a Secret as create; the test server records it as patch",
    ("", "events", "patch"): "the count of an Event is patched only when the same Event "
    "repeats, which this run may or may not reach before it stops",
}


def deploy_rules() -> list[dict[str, Any]]:
    built = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "argocd" / "deploy")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rules = []
    for document in yaml.safe_load_all(built):
        if document and document["kind"] in ("ClusterRole", "Role"):
            rules.extend(document["rules"])
    return rules


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def allowed(rules: list[dict[str, Any]], record: Any) -> bool:
    for rule in rules:
        names = rule.get("resourceNames")
        if (
            record.api_group in rule["apiGroups"]
            and record.resource in rule["resources"]
            and record.verb in rule["verbs"]
            and (not names or record.name in names)
        ):
            return True
    return False


def test_roles_match_requests_made(stack: Stack) -> None:
    for namespace in ("team", LEASE_NAMESPACE):
        stack.create_namespace(namespace)
    stack.table.put("team/app/PASSWORD", "p1")
    stack.table.put("team/gone/KEY", "k1")
    stack.table.put("team/Bad_Name/KEY", "invalid")
    stack.kubeapi.clear_requests()

    service = stack.service(
        variables={
            "LEADER_ELECTION": "true",
            "POD_NAMESPACE": LEASE_NAMESPACE,
            "PRUNE": "true",
            "MAX_DELETE_RATIO": "1",
        }
    )
    wait_until(lambda: stack.secret_data("team", "app") == {"PASSWORD": "p1"})
    wait_until(lambda: service.service.drift.snapshot()["watching"])
    stack.kube.request(
        "patch",
        "PATCH",
        "/api/v1/namespaces/team/secrets/app",
        query={"fieldManager": "someone-else"},
        body={"data": {"PASSWORD": "aGFuZC1lZGl0"}},
        content_type="application/merge-patch+json",
    )
    wait_until(lambda: stack.secret_data("team", "app") == {"PASSWORD": "p1"})
    stack.table.delete("team/gone/KEY")
    wait_until(lambda: stack.secret_data("team", "gone") is None)
    service.stop()

    records = [record for record in stack.kubeapi.requests if record.code != 0]
    rules = deploy_rules()
    denied = sorted(
        {(r.api_group, r.resource, r.verb, r.name) for r in records if not allowed(rules, r)}
    )
    used = {(r.api_group, r.resource, r.verb) for r in records}
    unused = grants(rules) - used - set(NOT_EXERCISED)

    assert denied == [], denied
    assert unused == set(), unused
