"""pytest fixtures for the Kubernetes API test server.

- `kubeapi_server` (session): one started server for the whole run;
- `kubeapi` (function): the same server after `reset()`, so each test starts from the
  namespaces of a new cluster, with no fault rules and an empty request log;
- `kubeconfig` (function): the path of a kubeconfig file that points at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import KubeAPIServer


@pytest.fixture(scope="session")
def kubeapi_server() -> Iterator[KubeAPIServer]:
    server = KubeAPIServer(port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kubeapi(kubeapi_server: KubeAPIServer) -> KubeAPIServer:
    kubeapi_server.reset()
    return kubeapi_server


@pytest.fixture
def kubeconfig(kubeapi: KubeAPIServer, tmp_path: Path) -> Path:
    return kubeapi.write_kubeconfig(tmp_path / "kubeconfig")
