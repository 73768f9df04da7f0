"""A kubestash service in this process for the HTTP tests, with every response kept.

The HTTP tests share one service per module (the `web` and `service` fixtures in
conftest.py), so dozens of requests cost one start-up. Tests that need a fresh rate limiter
start their own with `Web.start`. Every response the tests keep, every log line and
the Events are searched for secret values by `assert_nothing_leaked`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from renderer.settings import RateLimit, Settings
from renderer.testing.aws import CredstashStore
from renderer.testing.kubeapi import KubeAPIServer

from .processes import ServiceThread, start_service
from .support import Cluster, Values, metrics_text, wait_until

API_KEY = "reliability-api-key"
EXCLUDED = frozenset({"kube-system", "kubestash"})
BEARER = {"Authorization": f"Bearer {API_KEY}"}
WEBHOOK_TOKEN = "reliability-webhook-token"
SECRET_NAMES = ["team/app/PASSWORD", "team/app/API_KEY", "other/db/URL"]


class ListHandler(logging.Handler):
    """Keeps every formatted record, for the search for leaked values."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Web:
    store: CredstashStore
    kubeapi: KubeAPIServer
    kubeconfig: str
    cluster: Cluster
    log: ListHandler
    values: Values = field(default_factory=Values)
    answers: list[str] = field(default_factory=list)
    started: list[ServiceThread] = field(default_factory=list)
    service: ServiceThread | None = None

    def settings(self, **changes: Any) -> Settings:
        base = Settings(
            ddb_table=self.store.table,
            table_region=self.store.region,
            dry_run=False,
            namespace_exclude=EXCLUDED,
            port=0,
            wait_time=0.2,
            cron_hours=1000.0,
            api_key=API_KEY,
            webhook_token=WEBHOOK_TOKEN,
            render_rate_limit=RateLimit(1000, 60),
            http_timeout=5,
        )
        return base.replace(**changes)

    def start(self, **changes: Any) -> ServiceThread:
        running = start_service(
            self.settings(**changes),
            session=self.store.server.session(),
            kubeconfig=self.kubeconfig,
        )
        self.started.append(running)
        wait_until(lambda: running.http.get("/readyz").status_code == 200)
        return running

    def keep(self, answer: httpx.Response) -> httpx.Response:
        self.answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        return answer

    def syncs(self, running: ServiceThread) -> int:
        return len(running.history())


def assert_nothing_leaked(web: Web, service: ServiceThread) -> None:
    """Search every kept response, the log, the Events and /metrics for stored values."""
    for path in ("/", "/status", "/config", "/metrics", "/healthz", "/readyz"):
        web.keep(service.http.get(path))
    web.keep(service.http.post("/render?dry_run=true", headers=BEARER))
    web.keep(service.http.post("/render?wait=true", headers=BEARER))

    for number, text in enumerate(web.answers):
        web.values.assert_absent(f"HTTP response {number}", text)
    web.values.assert_absent("/metrics", metrics_text())
    web.values.assert_absent("the log", "\n".join(web.log.lines))
    web.values.assert_absent("the Events", json.dumps(web.cluster.events()))
    assert WEBHOOK_TOKEN not in "\n".join(web.answers)
    assert API_KEY not in "\n".join(web.answers)
