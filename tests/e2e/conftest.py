"""Fixtures for end-to-end syncs: moto_server, the Kubernetes API test server and kubectl.

Every check of the cluster goes through `kubectl --kubeconfig ...`, never through
kubestash's own client, so a bug in the client cannot hide itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renderer.kube import KubeClient
from renderer.settings import Settings
from renderer.sync import Syncer

REPO = Path(__file__).resolve().parents[2]


class Kubectl:
    """kubectl with the test server's kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = str(kubeconfig)

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = ["kubectl", "--kubeconfig", self.kubeconfig, *args]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, input=stdin)
        if check and completed.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {completed.stderr}")
        return completed

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Return the Secret as `kubectl get -o json` prints it, or None when not found."""
        completed = self.run(
            "get",
            "secret",
            name,
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
            check=False,
        )
        if completed.returncode != 0:
            if "NotFound" in completed.stderr or "not found" in completed.stderr:
                return None
            raise AssertionError(f"kubectl get secret {namespace}/{name}: {completed.stderr}")
        return json.loads(completed.stdout)

    def create(self, *generator: str) -> None:
        self.run("create", *generator)


@pytest.fixture
def kubectl(kubeapi, kubeconfig) -> Kubectl:
    """kubectl for the checks, after creating the namespaces test and prod.

    The namespaces are created through the API directly: two kubectl runs per test would
    double the time of the suite.
    """
    kube = KubeClient(Settings(), kubeconfig=str(kubeconfig))
    for name in ("test", "prod"):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        kube.request("create", "POST", "/api/v1/namespaces", body=body)
    kube.close()
    return Kubectl(kubeconfig)


@pytest.fixture
def settings(credstash_table) -> Settings:
    return Settings(
        ddb_table=credstash_table.table,
        table_region=credstash_table.region,
        dry_run=False,
        decrypt_workers=4,
        apply_workers=4,
        http_timeout=10,
    )


@pytest.fixture
def make_syncer(aws, kubeconfig, kubectl) -> Callable[..., Syncer]:
    """Build a Syncer with its own KubeClient and boto3 session (a fresh process's state)."""
    syncers: list[Syncer] = []

    def make(settings: Settings, session=None) -> Syncer:
        kube = KubeClient(settings, kubeconfig=str(kubeconfig))
        syncer = Syncer(settings, kube=kube, session=session or aws.session())
        syncers.append(syncer)
        return syncer

    yield make
    for syncer in syncers:
        syncer.kube.close()


@pytest.fixture
def syncer(make_syncer, settings) -> Syncer:
    return make_syncer(settings)


@pytest.fixture
def cli_env(aws, credstash_table, kubeconfig) -> dict[str, str]:
    """Environment for running `python -m renderer` against the two servers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KUBESTASH_")}
    env.update(credstash_table.env())
    env.update(
        KUBECONFIG=str(kubeconfig),
        DRY_RUN="false",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env
