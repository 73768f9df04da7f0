"""Helpers of the conformance suite: the cluster handle and request shortcuts."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config

from renderer.testing.kubeapi import KubeAPIServer

KUBECTL = os.environ.get("KUBECTL", "kubectl")


@dataclass
class Cluster:
    """What a test talks to: an HTTP client, a kubeconfig for kubectl, and (locally)
    the test server itself."""

    kubeconfig: Path
    http: httpx.Client
    server: KubeAPIServer | None

    @property
    def is_test_server(self) -> bool:
        return self.server is not None

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {result.stderr}")
        return result

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)


def http_client(kubeconfig: Path) -> httpx.Client:
    """Build an httpx client with the server address and credentials of a kubeconfig."""
    configuration = client.Configuration()
    config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    headers = {}
    token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    if token:
        headers["Authorization"] = token if token.startswith("Bearer") else f"Bearer {token}"
    cert = None
    if configuration.cert_file and configuration.key_file:
        cert = (configuration.cert_file, configuration.key_file)
    verify: Any = configuration.ssl_ca_cert or configuration.verify_ssl
    return httpx.Client(
        base_url=configuration.host, headers=headers, cert=cert, verify=verify, timeout=30
    )


def secrets_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{path}/{name}" if name else path


def apply(
    cluster: Cluster,
    namespace: str,
    name: str,
    body: dict[str, Any],
    *,
    manager: str,
    force: bool = False,
    dry_run: bool = False,
) -> httpx.Response:
    """Server-side apply a Secret body (apiVersion, kind and name are filled in)."""
    document = {"apiVersion": "v1", "kind": "Secret", **body}
    document["metadata"] = {"name": name, **body.get("metadata", {})}
    params = {"fieldManager": manager}
    if force:
        params["force"] = "true"
    if dry_run:
        params["dryRun"] = "All"
    return cluster.http.patch(
        secrets_path(namespace, name),
        content=json.dumps(document),
        params=params,
        headers={"Content-Type": "application/apply-patch+yaml"},
    )


def owners(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Map (manager, operation) to the FieldsV1 of each managedFields entry."""
    return {
        (entry["manager"], entry["operation"]): entry["fieldsV1"]
        for entry in obj["metadata"].get("managedFields", [])
    }
