"""Fixtures of the conformance suite: a `cluster` that is the test server or a real one.

By default `cluster` is the Kubernetes API test server. With KUBESTASH_E2E_KUBECONFIG
set, it is the cluster that kubeconfig points at, and tests that need the test server
(fault switch, reset, request log, server settings) are skipped with the reason.
Every test works in a namespace of its own, created and deleted by the `namespace`
fixture, so a real cluster is left as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi_support import Cluster, http_client

from renderer.testing.kubeapi import KubeAPIServer

REAL_CLUSTER = os.environ.get("KUBESTASH_E2E_KUBECONFIG", "")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if REAL_CLUSTER:
        path = Path(REAL_CLUSTER)
        with http_client(path) as http:
            yield Cluster(path, http, None)
        return
    with KubeAPIServer(port=0) as server:
        path = server.write_kubeconfig(tmp_path_factory.mktemp("kubeapi") / "kubeconfig")
        with http_client(path) as http:
            yield Cluster(path, http, server)


@pytest.fixture
def local_server(cluster: Cluster) -> KubeAPIServer:
    """The test server, reset; tests that use it are skipped against a real cluster."""
    if cluster.server is None:
        pytest.skip("needs the Kubernetes API test server (fault switch, reset or request log)")
    cluster.server.reset()
    return cluster.server


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"kubeapi-conf-{uuid.uuid4().hex[:8]}"
    answer = cluster.http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert answer.status_code == 201, answer.text
    yield name
    cluster.http.delete(f"/api/v1/namespaces/{name}")
