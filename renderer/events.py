"""Kubernetes Events about synced, failed, invalid and repaired Secrets.

Events are core/v1 objects on the Secret, or on its Namespace when the Secret does not exist
(it could not be written). A background thread writes them, so a slow or failing API never
delays or fails a sync. A failed write is logged at WARNING and retried after `interval`.

Repeats are compressed as the Kubernetes event compression design describes (one Event per
object and reason, with `count`, `firstTimestamp` and `lastTimestamp`): the first occurrence
creates an Event, later ones within `interval` seconds only raise a local count, and the next
write after the interval patches `count`, `lastTimestamp` and `message` of the same Event. A
token bucket bounds the writes of all objects together. The Python client has no event
recorder like client-go's, so this bookkeeping lives here.

Messages name Secrets and keys, never values.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from renderer import metrics

logger = logging.getLogger(__name__)

COMPONENT = "kubestash"
SYNCED = "Synced"
SYNC_FAILED = "SyncFailed"
DRIFT_REPAIRED = "DriftRepaired"
KEY_INVALID = "KeyInvalid"
WARNING_REASONS = frozenset({SYNC_FAILED, KEY_INVALID})

# Events about cluster-scoped objects such as a Namespace live in "default"; this is where
# client-go puts them and where `kubectl describe namespace` finds them.
CLUSTER_EVENT_NAMESPACE = "default"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The API server rejects Event messages longer than this many bytes.
MAX_MESSAGE = 1024
# Events expire after one hour by default (kube-apiserver --event-ttl), so state kept for an
# older series would point at an Event that no longer exists.
SERIES_TTL_SECONDS = 3600.0


@dataclass
class _Series:
    """Occurrences of one reason on one object, and the Event that reports them."""

    namespace: str
    name: str | None
    reason: str
    message: str
    first_seen: datetime
    last_seen: datetime
    pending: int = 0
    written: int = 0
    event_name: str | None = None
    event_namespace: str | None = None
    written_at: float = -math.inf
    touched_at: float = field(default_factory=time.monotonic)


class TokenBucket:
    """At most `burst` writes at once, refilled at `rate` writes per second."""

    def __init__(self, *, burst: int, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class EventRecorder:
    """Write rate-limited Kubernetes Events for Secrets from a background thread.

    `record()` never blocks on the API and never raises for an API failure. With
    `dry_run=True` nothing is written: Events would persist, and a dry run persists nothing.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        dry_run: bool,
        instance: str = "",
        interval: float = 300.0,
        burst: int = 100,
        rate: float = 5.0,
        request_timeout: float = 15.0,
        max_queued: int = 10000,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self.dry_run = dry_run
        self.instance = instance or socket.gethostname()
        self.interval = interval
        self.request_timeout = request_timeout
        self._bucket = TokenBucket(burst=burst, rate=rate)
        self._queue: queue.Queue[tuple[str, str | None, str, str, datetime]] = queue.Queue(
            max_queued
        )
        self._series: dict[tuple[str, str | None, str], _Series] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer after one last attempt to write every pending count."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout)
        self._thread = None

    def record(self, namespace: str, name: str | None, reason: str, message: str) -> None:
        """Queue one occurrence of `reason` on Secret namespace/name (None: on the Namespace)."""
        if self.dry_run:
            logger.debug("dry run: no Event %s for %s/%s: %s", reason, namespace, name, message)
            return
        if not DNS1123_LABEL.match(namespace) or len(namespace) > 63:
            logger.debug("no Event %s: %r is not a namespace name", reason, namespace)
            return
        if name is not None and (not DNS1123_SUBDOMAIN.match(name) or len(name) > 253):
            name = None
        with self._lock:
            self._busy += 1
        try:
            self._queue.put_nowait((namespace, name, reason, message, _now()))
        except queue.Full:
            with self._lock:
                self._busy -= 1
                self.dropped += 1
            logger.warning(
                "Event queue is full; dropped Event %s for %s/%s", reason, namespace, name
            )

    def record_sync(self, result: Any) -> None:
        """Record Synced and SyncFailed Events for the Secrets of one sync result.

        `result` is a renderer.result.SyncResult or its to_dict(); only the per-Secret
        outcomes are read. A dry-run result wrote nothing, so it gets no Events.
        """
        if _field(result, "dry_run"):
            return
        sync_id = _field(result, "sync_id")
        for outcome in _field(result, "secrets") or ():
            namespace, name = _field(outcome, "namespace"), _field(outcome, "name")
            status = _field(outcome, "status")
            if status in ("failed", "skipped", "not-applied"):
                reason = _field(outcome, "error") or f"the Secret was {status}"
                self.record(namespace, name, SYNC_FAILED, f"Sync {sync_id}: {reason}")
            failed = _field(outcome, "keys_failed") or {}
            if failed:
                keys = "; ".join(f"{key}: {failed[key]}" for key in sorted(failed))
                message = (
                    f"Sync {sync_id} could not sync keys ({keys}); a key that had a value "
                    "before keeps it"
                )
                self.record(namespace, name, SYNC_FAILED, message)
            if status != "applied":
                continue
            if _field(outcome, "action") == "delete":
                message = f"Sync {sync_id} deleted this Secret: all its keys left the table"
                self.record(namespace, name, SYNCED, message)
                continue
            changes = _describe_changes(outcome)
            if changes:
                message = f"Sync {sync_id} applied keys from the credstash table: {changes}"
                self.record(namespace, name, SYNCED, message)

    def record_invalid_names(self, parsed_names: Iterable[Any]) -> None:
        """Record a KeyInvalid Event per invalid credstash name (a renderer.names.ParsedName).

        The Event goes to the Secret named by the credstash name when that Secret exists, else
        to the namespace. A name whose namespace part is not a valid namespace gets no Event,
        only the log line and the kubestash_invalid_keys metric.
        """
        for parsed in parsed_names:
            name = _field(parsed, "name") or ""
            parts = name.split("/")
            if len(parts) != 3:
                continue
            message = f"credstash name {name!r} is invalid and was skipped"
            reason = _field(parsed, "reason")
            if reason:
                message += f": {reason}"
            self.record(parts[0], parts[1], KEY_INVALID, message)

    def record_drift_repaired(
        self, namespace: str, name: str, keys: Iterable[str], managers: Iterable[str] = ()
    ) -> None:
        message = f"Re-applied keys that differed from the table: {_join(sorted(keys))}"
        by = sorted(set(managers))
        if by:
            message += f" (changed by field manager {_join(by)})"
        self.record(namespace, name, DRIFT_REPAIRED, message)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued occurrence is handled; return False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        logger.debug("Event writer started")
        while not self._stopping.is_set():
            try:
                occurrence = self._queue.get(timeout=0.5)
            except queue.Empty:
                occurrence = None
            if occurrence is not None:
                self._merge(*occurrence)
            self._write_due(final=False)
            if occurrence is not None:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()
        self._write_due(final=True)
        logger.debug("Event writer stopped")

    def _merge(
        self, namespace: str, name: str | None, reason: str, message: str, seen: datetime
    ) -> None:
        key = (namespace, name, reason)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = _Series(namespace, name, reason, message, seen, seen)
                self._series[key] = series
            series.pending += 1
            series.message = message
            series.last_seen = seen
            series.touched_at = time.monotonic()

    def _write_due(self, *, final: bool) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                s
                for s in self._series.values()
                if s.pending and (final or now - s.written_at >= self.interval)
            ]
            for key, series in list(self._series.items()):
                if not series.pending and now - series.touched_at > SERIES_TTL_SECONDS:
                    del self._series[key]
        for series in due:
            if not self._bucket.take():
                logger.debug("Event budget used up; %d Events wait", len(due))
                return
            self._write(series)

    def _write(self, series: _Series) -> None:
        """Create or update the Event of one series; on failure keep the count for later."""
        series.written_at = time.monotonic()
        count = series.written + series.pending
        try:
            if series.event_name is None or not self._patch(series, count):
                self._create(series, count)
        except (ApiException, HTTPError, OSError, ValueError) as error:
            logger.warning(
                "Could not write Event %s for %s/%s: %s",
                series.reason,
                series.namespace,
                series.name or "",
                _short_error(error),
            )
            return
        series.written = count
        series.pending = 0

    def _create(self, series: _Series, count: int) -> None:
        involved, event_namespace = self._involved_object(series)
        event_name = f"{involved['name']}.{time.time_ns():x}"
        body = {
            "metadata": {"name": event_name, "namespace": event_namespace},
            "involvedObject": involved,
            "reason": series.reason,
            "message": _clip(series.message),
            "type": "Warning" if series.reason in WARNING_REASONS else "Normal",
            "count": count,
            "firstTimestamp": _rfc3339(series.first_seen),
            "lastTimestamp": _rfc3339(series.last_seen),
            "source": {"component": COMPONENT, "host": self.instance},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
        }
        self._request(
            "create",
            self._core.create_namespaced_event_with_http_info,
            event_namespace,
            client.CoreV1Event.model_validate(body),
        )
        series.event_name = event_name
        series.event_namespace = event_namespace
        logger.debug("Event %s %s created for %s", series.reason, event_name, involved["name"])

    def _patch(self, series: _Series, count: int) -> bool:
        """Raise the count of the existing Event; return False if it expired meanwhile."""
        body = {
            "count": count,
            "message": _clip(series.message),
            "lastTimestamp": _rfc3339(series.last_seen),
        }
        try:
            self._request(
                "patch",
                self._core.patch_namespaced_event_with_http_info,
                series.event_name,
                series.event_namespace,
                body,
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status == 404:
                series.event_name = None
                return False
            raise
        return True

    def _request(self, verb: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Send one request with the request timeout, counted in kubestash_kube_requests_total."""
        try:
            response = call(*args, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as error:
            metrics.kube_requests_total.labels(verb, str(error.status or 0)).inc()
            raise
        except (HTTPError, OSError):
            metrics.kube_requests_total.labels(verb, "0").inc()
            raise
        status = getattr(response, "status", None)
        if status is None:
            status = response[1]
        metrics.kube_requests_total.labels(verb, str(status)).inc()
        return response

    def _involved_object(self, series: _Series) -> tuple[dict[str, Any], str]:
        """Point at the Secret when it exists (with its uid), else at its Namespace."""
        if series.name is not None:
            try:
                secret = self._request(
                    "get",
                    self._core.read_namespaced_secret_with_http_info,
                    series.name,
                    series.namespace,
                    _preload_content=False,
                )
            except ApiException as error:
                if error.status != 404:
                    raise
            else:
                metadata = _json(secret).get("metadata", {})
                involved = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "namespace": series.namespace,
                    "name": series.name,
                    "uid": metadata.get("uid"),
                    "resourceVersion": metadata.get("resourceVersion"),
                }
                return {k: v for k, v in involved.items() if v}, series.namespace
        if series.name is not None and not series.message.startswith("Secret "):
            series.message = f"Secret {series.name}: {series.message}"
        involved = {"apiVersion": "v1", "kind": "Namespace", "name": series.namespace}
        return involved, CLUSTER_EVENT_NAMESPACE


def _describe_changes(outcome: Any) -> str:
    parts = []
    for label, attribute in (
        ("added", "keys_added"),
        ("changed", "keys_changed"),
        ("removed", "keys_removed"),
    ):
        keys = sorted(_field(outcome, attribute) or ())
        if keys:
            parts.append(f"{label} {_join(keys)}")
    return "; ".join(parts)


def _join(names: list[str], limit: int = 20) -> str:
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f" and {len(names) - limit} more"
    return text


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _clip(message: str) -> str:
    encoded = message.encode()
    if len(encoded) <= MAX_MESSAGE:
        return message
    return encoded[: MAX_MESSAGE - 3].decode(errors="ignore") + "..."


def _short_error(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return str(error) or type(error).__name__


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data or b"{}")


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
