"""Fixtures that run kubestash service mode against moto_server and the Kubernetes API
test server."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest

from renderer.kube import KubeClient
from renderer.leader import LeaseTiming
from renderer.names import SecretRef
from renderer.service import Service
from renderer.settings import Settings
from renderer.stream import StreamTiming
from renderer.sync import Syncer

from .harness import RunningService

API_KEY = "test-api-key"
FAST_STREAM = StreamTiming(
    poll_interval=0.05, describe_interval=0.5, throttle_initial=0.05, restart_initial=0.1
)
FAST_LEASE = LeaseTiming(lease_duration=2, renew_deadline=1.5, retry_period=0.2)


class Stack:
    """moto with a credstash table, the Kubernetes API test server, and services on them."""

    def __init__(self, table: Any, kubeapi: Any, kubeconfig: str):
        self.table = table
        self.kubeapi = kubeapi
        self.kubeconfig = kubeconfig
        self.services: list[RunningService] = []
        self.environ = {
            **table.env(),
            "KUBECONFIG": kubeconfig,
            "DRY_RUN": "false",
            "PORT": "0",
            "WAIT_TIME": "0.2",
            "CRON_HOURS": "1000",
            "KUBESTASH_API_KEY": API_KEY,
            "NAMESPACE_EXCLUDE_FILTER": "kube-system",
        }
        self.kube = KubeClient(self.settings(), kubeconfig=kubeconfig)

    def settings(self, **variables: str) -> Settings:
        return Settings.load({**self.environ, **variables})

    def create_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.kube.request("create", "POST", "/api/v1/namespaces", body=body)

    def sync_once(self) -> None:
        """Run one full sync outside the service, as an earlier deployment would have."""
        settings = self.settings()
        syncer = Syncer(settings, kube=self.kube, session=self.table.server.session())
        assert syncer.full_sync(trigger="startup").result == "success"

    def service(
        self, *, streams: Any = None, variables: dict[str, str] | None = None, **options: Any
    ) -> RunningService:
        settings = self.settings(**(variables or {}))
        kube = KubeClient(settings, kubeconfig=self.kubeconfig)
        session = self.table.server.session()
        syncer = Syncer(settings, kube=kube, session=session)
        options.setdefault("stream_timing", FAST_STREAM)
        options.setdefault("lease_timing", FAST_LEASE)
        service = Service(
            settings,
            host="127.0.0.1",
            syncer=syncer,
            kube=kube,
            session=session,
            streams=streams,
            **options,
        )
        running = RunningService(service)
        self.services.append(running)
        return running.__enter__()

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.kube.get_secret(SecretRef(namespace, name))
        if secret is None:
            return None
        data = secret.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def stop(self) -> None:
        for running in reversed(self.services):
            running.stop()


@pytest.fixture
def stack(credstash_table: Any, kubeapi: Any, kubeconfig: Any) -> Iterator[Stack]:
    stack = Stack(credstash_table, kubeapi, os.fspath(kubeconfig))
    yield stack
    stack.stop()
