"""Fixtures for drift tests: a credstash table in moto, the Kubernetes API test server,
a real Syncer writing to it, and a DriftMonitor watching it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from renderer import metrics
from renderer.drift import DriftMonitor
from renderer.kube import KubeClient
from renderer.settings import Settings
from renderer.sync import Syncer
from renderer.testing.aws import CredstashStore

from .support import NAMESPACE, TABLE_VALUES, Kubectl


@pytest.fixture
def kubectl(kubeconfig: Path) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def settings(credstash_table: CredstashStore) -> Settings:
    environ = {
        **credstash_table.env(),
        "DRY_RUN": "false",
        "NAMESPACE_EXCLUDE_FILTER": "kube-system",
        "HTTP_TIMEOUT": "5",
    }
    return Settings.load(environ)


@pytest.fixture
def seeded(credstash_table: CredstashStore, kubectl: Kubectl) -> CredstashStore:
    kubectl("create", "namespace", NAMESPACE)
    credstash_table.put_many(TABLE_VALUES)
    return credstash_table


@pytest.fixture
def syncer(settings: Settings, kubeconfig: Path, seeded: CredstashStore) -> Iterator[Syncer]:
    kube = KubeClient(settings, kubeconfig=str(kubeconfig))
    yield Syncer(settings, kube=kube)
    kube.close()


@pytest.fixture(autouse=True)
def fresh_drift_series() -> None:
    metrics.key_drift.clear()


@pytest.fixture
def start_monitor(
    api_client: kubernetes.client.ApiClient, syncer: Syncer
) -> Iterator[Callable[..., DriftMonitor]]:
    """Start a DriftMonitor on the syncer's desired state; stopped after the test."""
    started: list[DriftMonitor] = []

    def start(**options: Any) -> DriftMonitor:
        options.setdefault("dry_run", False)
        options.setdefault("request_timeout", 5.0)
        monitor = DriftMonitor(api_client, desired=lambda: syncer.desired, **options)
        monitor.start()
        assert monitor.watch.wait_listed(10), "the Secret watch did not list within 10 s"
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()
