"""Checks shared by the reliability tests: the table as credstash reads it, the live Secrets,
Events, metrics, and the search for leaked values.

Every check reads the Kubernetes API test server over plain HTTP and the table through the
credstash library, never through kubestash's own client, so a bug there cannot hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from renderer import metrics

MANAGER = "kubestash"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=kubestash"
CHECKSUM = "kubestash.io/checksum"
STATUS = "kubestash.io/sync-status"
MESSAGE = "kubestash.io/sync-message"

# The name rules of the design, written again here so that the checks do not share a bug
# with renderer.names: DNS-1123 label and subdomain, and a KEY of ASCII letters, digits,
# '_', '.', '&' and '-' that becomes upper case with '.', '&' and '-' turned into '_'.
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
RAW_KEY = re.compile(r"[A-Za-z0-9_.&-]+")

Ref = tuple[str, str]


def token(label: str) -> str:
    """Return a value no log line could contain by chance."""
    return f"{label}-{uuid.uuid4().hex}"


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate.__qualname__}")
        time.sleep(every)


def secret_key(name: str, excluded: Iterable[str] = ()) -> tuple[str, str, str] | None:
    """Return (namespace, Secret, KEY) that a credstash name becomes, or None if it is skipped."""
    parts = name.split("/")
    if len(parts) != 3:
        return None
    namespace, secret, raw = parts
    if namespace in set(excluded):
        return None
    if len(namespace) > 63 or not LABEL.fullmatch(namespace):
        return None
    if len(secret) > 253 or not SUBDOMAIN.fullmatch(secret):
        return None
    if not RAW_KEY.fullmatch(raw) or len(raw) > 253:
        return None
    return namespace, secret, raw.replace(".", "_").replace("&", "_").replace("-", "_").upper()


def expected_secrets(values: Mapping[str, str], excluded: Iterable[str] = ()) -> dict[Ref, dict]:
    """Group credstash name -> value into Secrets, resolving KEY collisions as designed:
    the name already in normal form wins, otherwise the smallest name."""
    excluded = set(excluded)
    candidates: dict[tuple[str, str, str], list[str]] = {}
    for name in values:
        target = secret_key(name, excluded)
        if target is not None:
            candidates.setdefault(target, []).append(name)

    secrets: dict[Ref, dict[str, str]] = {}
    for (namespace, secret, key), names in candidates.items():
        normal = sorted(n for n in names if n.rsplit("/", 1)[1] == key)
        winner = normal[0] if normal else min(names)
        secrets.setdefault((namespace, secret), {})[key] = values[winner]
    return secrets


class Cluster:
    """Plain HTTP reads of the Kubernetes API test server."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        answer = self.http.get(path, params=params)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def create_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        answer = self.http.post("/api/v1/namespaces", json=body)
        assert answer.status_code in (201, 409), answer.text

    def create_secret(
        self, namespace: str, name: str, data: Mapping[str, str], **meta: Any
    ) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, **meta},
            "data": {key: b64(value) for key, value in data.items()},
        }
        answer = self.http.post(f"/api/v1/namespaces/{namespace}/secrets", json=body)
        assert answer.status_code == 201, answer.text

    def apply_as(self, manager: str, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Server-side apply `data` into a Secret as another field manager, as kubectl would."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {key: b64(value) for key, value in data.items()},
        }
        answer = self.http.patch(
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            params={"fieldManager": manager, "force": "true"},
            content=json.dumps(body),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert answer.status_code in (200, 201), answer.text

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of a Secret, or None when it does not exist."""
        secret = self.secret(namespace, name)
        return None if secret is None else decoded(secret)

    def secrets(self, namespace: str = "") -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"
        return (self.get(path) or {}).get("items") or []

    def managed(self) -> dict[Ref, dict[str, str]]:
        """Decoded data of every Secret labelled as managed by kubestash."""
        listed = self.get("/api/v1/secrets", labelSelector=MANAGED_SELECTOR) or {}
        result = {}
        for secret in listed.get("items") or []:
            metadata = secret["metadata"]
            result[(metadata["namespace"], metadata["name"])] = decoded(secret)
        return result

    def snapshot(self) -> dict[Ref, tuple[str, dict[str, str]]]:
        """Resource version and data of every Secret, to prove that nothing changed."""
        return {
            (s["metadata"]["namespace"], s["metadata"]["name"]): (
                s["metadata"]["resourceVersion"],
                decoded(s),
            )
            for s in self.secrets()
        }

    def events(self) -> list[dict[str, Any]]:
        return (self.get("/api/v1/events") or {}).get("items") or []

    def events_for(self, reason: str, *, kind: str = "", name: str = "") -> list[dict[str, Any]]:
        found = []
        for event in self.events():
            involved = event.get("involvedObject") or {}
            if event.get("reason") != reason:
                continue
            if kind and involved.get("kind") != kind:
                continue
            if name and involved.get("name") != name:
                continue
            found.append(event)
        return found


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    data = secret.get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def kubestash_entries(secret: Mapping[str, Any]) -> list[dict[str, Any]]:
    fields = secret["metadata"].get("managedFields") or []
    return [entry for entry in fields if entry.get("manager") == MANAGER]


def assert_consistent(secret: Mapping[str, Any]) -> None:
    """One Apply entry for kubestash, and a checksum annotation that matches the data."""
    entries = kubestash_entries(secret)
    assert [entry["operation"] for entry in entries] == ["Apply"]
    owned = set((entries[0].get("fieldsV1") or {}).get("f:data") or {})
    data = secret.get("data") or {}
    assert {f"f:{key}" for key in data} >= owned
    annotations = secret["metadata"].get("annotations") or {}
    owned_data = {key: data[key] for key in data if f"f:{key}" in owned}
    text = json.dumps(dict(sorted(owned_data.items())), separators=(",", ":"))
    assert annotations.get(CHECKSUM) == hashlib.sha256(text.encode()).hexdigest()


def sample(name: str, **labels: str) -> float:
    """The current value of one metric sample of this process (0 when it does not exist)."""
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def metrics_text() -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.REGISTRY).decode()


class Values:
    """Every plaintext a test stored, and the search for them in what kubestash emits."""

    def __init__(self) -> None:
        self.plaintexts: set[str] = set()

    def add(self, value: str) -> str:
        self.plaintexts.add(value)
        return value

    def forms(self) -> Iterable[tuple[str, str]]:
        for value in self.plaintexts:
            # Short values (empty, "1") occur in any text; tests use long random values.
            if len(value) >= 12:
                yield value, value
                yield value, b64(value)

    def assert_absent(self, where: str, text: str) -> None:
        for value, form in self.forms():
            assert form not in text, f"value of length {len(value)} found in {where}"
