"""Helpers shared by the drift, Event and status page tests."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from renderer import metrics
from renderer.names import SecretRef

NAMESPACE = "team"
SECRET = "app"
REF = SecretRef(NAMESPACE, SECRET)
TABLE_VALUES = {
    f"{NAMESPACE}/{SECRET}/API_KEY": "table-api-key-7f3a",
    f"{NAMESPACE}/{SECRET}/DB_PASSWORD": "table-db-password-91c2",
}


def wait_for(condition: Callable[[], Any], *, timeout: float, message: str) -> Any:
    """Poll `condition` until it returns a true value; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(0.02)


def drift_gauge(key: str, namespace: str = NAMESPACE, secret: str = SECRET) -> float | None:
    labels = {"namespace": namespace, "secret": secret, "key": key}
    return metrics.REGISTRY.get_sample_value("kubestash_secret_key_drift", labels)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Kubectl:
    """kubectl pointed at the test server's kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def secret(self, namespace: str = NAMESPACE, name: str = SECRET) -> dict[str, Any]:
        return json.loads(self("get", "secret", name, "-n", namespace, "-o", "json"))

    def value(self, key: str, namespace: str = NAMESPACE, name: str = SECRET) -> str | None:
        data = self.secret(namespace, name).get("data") or {}
        return base64.b64decode(data[key]).decode() if key in data else None
