"""Every dashboard query and alert rule, evaluated by a real Prometheus scraping kubestash.

Runs `python -m renderer.service` on 127.0.0.1 against moto and the Kubernetes API test
server, and Prometheus (the Debian package) scraping it every second. Before the queries
run, the test makes each thing they count happen: syncs, a stream record, a drift and its
repair, a failed key, a sync timeout and a blocked mass deletion.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from renderer.testing.aws import CredstashStore, free_port

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "kubestash.json"
RULES = REPO / "dashboards" / "kubestash-rules.yaml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
API_KEY = "observability-test-key"
VALUES = {
    "team/app/API_KEY": "obs-api-key-0a1b",
    "team/app/DB_PASSWORD": "obs-db-password-2c3d",
    "team/cache/TOKEN": "obs-cache-token-4e5f",
}
STREAM_VALUE = "obs-stream-value-6a7b"
ROTATED_VALUE = "obs-api-key-rotated-8c9d"
FAILING_VALUE = "obs-db-password-that-fails"
# Alerts whose condition this test makes true, so their full expression must return series.
CAUSED_ALERTS = {"KubestashKeySyncFailed", "KubestashSyncTimeout", "KubestashMassDeletionBlocked"}
# A comparison with a number; unfiltered() replaces it so every compared series is returned.
THRESHOLD = re.compile(r"(>=|<=|==|!=|>|<)\s*-?[0-9.]+(?:\s*\*\s*[0-9.]+)*")
METRIC_NAME = re.compile(r"\b((?:kubestash|process)_[a-z0-9_]+)\b")
GRAFANA_VARIABLES = {
    r"\$__rate_interval|\$\{__rate_interval\}": "1m",
    r"\$__interval|\$\{__interval\}": "15s",
    r"\$__range|\$\{__range\}": "1h",
    r"\$namespace|\$\{namespace(?::[a-z]+)?\}": ".*",
}

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus is missing")


def wait_for(condition: Any, *, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(0.1)


def kubectl(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries: list[tuple[str, str]] = []
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels") or [])
        for target in panel.get("targets") or []:
            if target.get("expr"):
                queries.append((panel.get("title", ""), target["expr"]))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def substitute_variables(expr: str) -> str:
    for pattern, value in GRAFANA_VARIABLES.items():
        expr = re.sub(pattern, value, expr)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def unfiltered(expr: str) -> str:
    """Return the series an alert expression compares, without its threshold."""
    expr = expr.strip()
    match = re.fullmatch(r"absent\((.*)\)", expr, flags=re.DOTALL)
    if match:
        return match.group(1)
    return THRESHOLD.sub(">= -Inf", expr)


class Prometheus:
    """A Prometheus server on 127.0.0.1 scraping one target every second."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "kubestash",
                    "honor_labels": True,
                    "static_configs": [{"targets": [target], "labels": {"pod": "kubestash-0"}}],
                }
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, timeout=30, message="Prometheus did not become ready")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


@pytest.fixture
def table(credstash_table: CredstashStore, kubeconfig: Path) -> CredstashStore:
    kubectl(kubeconfig, "create", "namespace", "team")
    credstash_table.put_many(VALUES)
    return credstash_table


@pytest.fixture
def service(table: CredstashStore, kubeconfig: Path, tmp_path: Path) -> Iterator[str]:
    """Run kubestash service mode in a subprocess; yield its base URL."""
    port = free_port()
    env = {
        **os.environ,
        **table.env(),
        "KUBECONFIG": str(kubeconfig),
        "PORT": str(port),
        "DRY_RUN": "false",
        "WAIT_TIME": "0",
        "KUBESTASH_API_KEY": API_KEY,
        "RENDER_RATE_LIMIT": "100 per 1 minute",
        "CREDSTASH_SYNC_TIMEOUT_SECS": "3",
        "HTTP_TIMEOUT": "10",
        "MAX_DELETE_RATIO": "0",
        "NAMESPACE_EXCLUDE_FILTER": "kube-system",
        "ENV": "observability",
        "CLUSTER_NAME": "loopback",
    }
    log = (tmp_path / "kubestash.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "renderer.service", "--host", "127.0.0.1"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), timeout=30, message="kubestash did not become ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
    text = (tmp_path / "kubestash.log").read_text()
    for value in [*VALUES.values(), STREAM_VALUE, ROTATED_VALUE, FAILING_VALUE]:
        assert value not in text


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def render(url: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/render?wait=true",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def metric_samples(url: str) -> dict[str, list[Any]]:
    samples: dict[str, list[Any]] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def sync_count(url: str, result: str) -> float:
    samples = metric_samples(url).get("kubestash_sync_total", [])
    return sum(sample.value for sample in samples if sample.labels.get("result") == result)


def secret_value(kubeconfig: Path, name: str, key: str) -> str | None:
    secret = json.loads(kubectl(kubeconfig, "get", "secret", name, "-n", "team", "-o", "json"))
    return (secret.get("data") or {}).get(key)


def cause_everything(url: str, table: CredstashStore, kubeconfig: Path, kubeapi: Any) -> None:
    """Make each event that a dashboard panel or an alert counts happen once."""
    table.put("team/app/STREAM_KEY", STREAM_VALUE)
    wait_for(
        lambda: secret_value(kubeconfig, "app", "STREAM_KEY"),
        timeout=20,
        message="the stream record did not reach the Secret",
    )

    table_value = secret_value(kubeconfig, "app", "API_KEY")
    patch = json.dumps({"data": {"API_KEY": base64.b64encode(b"edited-by-hand").decode()}})
    kubectl(kubeconfig, "patch", "secret", "app", "-n", "team", "--type", "merge", "-p", patch)
    wait_for(
        lambda: secret_value(kubeconfig, "app", "API_KEY") == table_value,
        timeout=20,
        message="the drifted key was not repaired",
    )

    # The stream record's sync reads the Secret after the deadline, so its write is abandoned.
    kubeapi.faults.add({"action": "delay", "delay_seconds": 6, "path": "/secrets"})
    try:
        table.put("team/app/API_KEY", ROTATED_VALUE)
        wait_for(
            lambda: sync_count(url, "timeout"),
            timeout=30,
            message="no sync timed out",
        )
    finally:
        kubeapi.faults.clear()

    table.put("team/app/DB_PASSWORD", FAILING_VALUE)
    table.tamper("team/app/DB_PASSWORD")
    assert render(url)["result"] in ("partial", "failed")

    table.delete("team/cache/TOKEN")
    assert render(url)["result"] == "blocked"


def test_dashboard_and_rules_return_series(service, table, kubeconfig, kubeapi, tmp_path):
    prometheus = Prometheus(service.removeprefix("http://"), tmp_path)
    try:
        wait_for(lambda: last_scrape(prometheus), timeout=30, message="no scrape of kubestash")
        cause_everything(service, table, kubeconfig, kubeapi)
        exposed = metric_samples(service)
        wait_for(
            lambda: prometheus.query('kubestash_sync_total{result="blocked"}'),
            timeout=30,
            message="Prometheus did not scrape the last sync",
        )
        caused = time.time()
        wait_for(
            lambda: last_scrape(prometheus) > caused + 1,
            timeout=30,
            message="Prometheus did not scrape after the last event",
        )
        empty = [
            f"{title}: {expr}"
            for title, expr in dashboard_queries()
            if not prometheus.query(substitute_variables(expr))
        ]
        for rule in alert_rules():
            expr = rule["expr"]
            if not prometheus.query(unfiltered(expr)):
                empty.append(f"rule {rule.get('alert') or rule.get('record')}: {expr}")
            if rule.get("alert") in CAUSED_ALERTS and not prometheus.query(expr):
                empty.append(f"alert {rule['alert']} does not fire: {expr}")
    finally:
        prometheus.stop()

    used: set[str] = set()
    for _, expr in dashboard_queries():
        used.update(METRIC_NAME.findall(expr))
    for rule in alert_rules():
        used.update(METRIC_NAME.findall(rule["expr"]))
    assert sorted(used - set(exposed)) == []
    assert empty == []


def last_scrape(prometheus: Prometheus) -> float:
    """Return the Unix time of the newest scrape of kubestash, 0 before the first."""
    result = prometheus.query('timestamp(up{job="kubestash"})')
    return float(result[0]["value"][1]) if result else 0.0
