"""Fixtures of the reliability suite: a credstash table in moto_server, the Kubernetes API
test server, and syncs against both, with every stored plaintext remembered so that each
test can search what kubestash emitted for it."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from renderer.kube import KubeClient
from renderer.scheduler import ScheduleTiming
from renderer.settings import RateLimit, Settings
from renderer.source import CredstashTable
from renderer.sync import Syncer
from renderer.testing.aws import CredstashStore, MotoServer
from renderer.testing.kubeapi import KubeAPIServer, RequestRecord

from .processes import ServiceThread, start_service
from .support import Cluster, Values, metrics_text, token, wait_until
from .web import API_KEY, EXCLUDED, ListHandler, Web

NAMESPACES = ("team", "other")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class Rig:
    """The two servers, a reader of each, and the syncers a test made."""

    store: CredstashStore
    kubeapi: KubeAPIServer
    kubeconfig: str
    cluster: Cluster
    caplog: pytest.LogCaptureFixture
    values: Values = field(default_factory=Values)
    syncers: list[Syncer] = field(default_factory=list)
    services: list[ServiceThread] = field(default_factory=list)

    def put(self, name: str, value: str | None = None, **options: Any) -> str:
        """Store a new version of `name` with credstash; a random value unless given."""
        value = token("value") if value is None else value
        self.values.add(value)
        self.store.put(name, value, **options)
        return value

    def put_many(self, names: list[str]) -> dict[str, str]:
        return {name: self.put(name) for name in names}

    def settings(self, **changes: Any) -> Settings:
        base = Settings(
            ddb_table=self.store.table,
            table_region=self.store.region,
            dry_run=False,
            namespace_exclude=EXCLUDED,
            decrypt_workers=4,
            apply_workers=4,
            http_timeout=5,
            scan_segments=1,
        )
        return base.replace(**changes)

    def syncer(
        self,
        settings: Settings | None = None,
        *,
        session: boto3.Session | None = None,
        page_size: int | None = None,
    ) -> Syncer:
        """A Syncer with clients of its own, as a new kubestash process would have."""
        settings = settings or self.settings()
        session = session or self.store.server.session()
        kube = KubeClient(settings, kubeconfig=self.kubeconfig)
        table = CredstashTable(settings, session, page_size=page_size)
        syncer = Syncer(settings, kube=kube, session=session, table=table)
        self.syncers.append(syncer)
        return syncer

    def service_settings(self, **changes: Any) -> Settings:
        defaults: dict[str, Any] = {
            "port": 0,
            "wait_time": 0.2,
            "cron_hours": 1000.0,
            "api_key": API_KEY,
            "render_rate_limit": RateLimit(1000, 60),
        }
        return self.settings(**{**defaults, **changes})

    def service(
        self,
        settings: Settings | None = None,
        *,
        kubeconfig: str | None = None,
        timing: ScheduleTiming | None = None,
    ) -> ServiceThread:
        """Start service mode in this process with a Syncer of its own."""
        running = start_service(
            settings or self.service_settings(),
            session=self.store.server.session(),
            kubeconfig=kubeconfig or self.kubeconfig,
            timing=timing,
        )
        self.syncers.append(running.service.syncer)
        self.services.append(running)
        return running

    def requests(self) -> list[RequestRecord]:
        """The request log once it stops growing.

        The test server logs a request after it has sent the response, so the client can
        be a step ahead of the log.
        """
        seen = self.kubeapi.requests
        while True:
            time.sleep(0.05)
            now = self.kubeapi.requests
            if len(now) == len(seen):
                return now
            seen = now

    def secret_requests(self, verbs: frozenset[str] = WRITE_VERBS) -> list[RequestRecord]:
        return [
            record
            for record in self.requests()
            if record.resource == "secrets" and record.verb in verbs
        ]

    def writes_to(self, namespace: str, name: str) -> list[RequestRecord]:
        return [r for r in self.secret_requests() if (r.namespace, r.name) == (namespace, name)]

    def logged(self, level: int, *parts: str) -> list[str]:
        """Messages at `level` or above that contain every one of `parts`."""
        found = []
        for record in self.caplog.records:
            message = record.getMessage()
            if record.levelno >= level and all(part in message for part in parts):
                found.append(message)
        return found

    def assert_no_leak(self, *outputs: Any) -> None:
        """No stored plaintext in the logs, Events, metrics or the given outputs."""
        self.values.assert_absent("the log", self.caplog.text)
        self.values.assert_absent("the Events", json.dumps(self.cluster.events()))
        self.values.assert_absent("/metrics", metrics_text())
        for number, output in enumerate(outputs):
            text = output if isinstance(output, str) else json.dumps(_plain(output))
            self.values.assert_absent(f"output {number}", text)


def _plain(output: Any) -> Any:
    if hasattr(output, "to_dict"):
        return {**output.to_dict(), "preview": getattr(output, "preview", None)}
    return output


@pytest.fixture
def rig(
    credstash_table: CredstashStore,
    kubeapi: KubeAPIServer,
    kubeconfig: Any,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Rig]:
    caplog.set_level(logging.DEBUG, logger="renderer")
    cluster = Cluster(kubeapi.url)
    for namespace in NAMESPACES:
        cluster.create_namespace(namespace)
    rig = Rig(credstash_table, kubeapi, os.fspath(kubeconfig), cluster, caplog)
    yield rig
    kubeapi.faults.clear()
    for running in reversed(rig.services):
        running.stop()
    for syncer in rig.syncers:
        syncer.kube.close()
    cluster.close()


@pytest.fixture(scope="module")
def web(
    moto_server: MotoServer, kubeapi_server: KubeAPIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Web]:
    """One table, one cluster and one service (webhook on) for all HTTP tests of a module."""
    handler = ListHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("renderer")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    with pytest.MonkeyPatch.context() as patch:
        moto_server.reset()
        for name, value in moto_server.env().items():
            patch.setenv(name, value)
        store = CredstashStore(moto_server).create()
        kubeapi_server.reset()
        kubeconfig = kubeapi_server.write_kubeconfig(tmp_path_factory.mktemp("http") / "config")
        cluster = Cluster(kubeapi_server.url)
        for namespace in NAMESPACES:
            cluster.create_namespace(namespace)
        web = Web(store, kubeapi_server, str(kubeconfig), cluster, handler)
        for name in ("team/app/PASSWORD", "team/app/API_KEY", "other/db/URL"):
            store.put(name, web.values.add(token("value")))
        web.service = web.start()
        yield web
        for running in reversed(web.started):
            running.stop()
        cluster.close()
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def service(web: Web) -> ServiceThread:
    """The module's service, with no fault rule and no sync left from an earlier test."""
    web.kubeapi.faults.clear()
    running = web.service
    assert running is not None

    def quiet() -> bool:
        syncs = running.http.get("/status").json()["syncs"]
        return syncs["running"] is None and not syncs["queued_full_syncs"]

    wait_until(quiet)
    return running
