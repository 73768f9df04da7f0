"""Drift: keys of managed Secrets whose live value differs from the credstash table.

A watch on the Secrets labelled `app.kubernetes.io/managed-by=kubestash` keeps a live cache
(renderer.secretwatch). After every watch event and every sync, each key of the desired state
is compared with the cache: a key drifts when its live value differs, when it is missing, or
when its whole Secret is missing. Keys added by hand are not in the table and never drift.
Keys that failed to decrypt keep their last good value and are not drift either.

`kubestash_secret_key_drift` is 1 for a drifting key and 0 otherwise. Outside dry run, a
Secret that a watch event shows drifting is re-applied at once through the heal callback. A
Secret that drifts again soon after a repair (another controller fighting over the same key)
is repaired with exponential backoff (renderer.repair). Drift found after a sync starts no
repair, because that sync just applied what it could and reported the rest as failures.

A Secret that the last sync skipped or failed to write (its namespace does not exist, it is
not Opaque, it is too large, the API rejected it) is not drift: kubestash cannot write it, and
kubestash_key_synced_failed_status already reports its keys. Namespaces missing from this
cluster are common because one credstash table often serves several clusters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from renderer import metrics
from renderer.desired import DesiredSecret
from renderer.events import EventRecorder
from renderer.names import SecretRef
from renderer.repair import RepairSchedule
from renderer.secretwatch import LiveSecret, SecretWatch

logger = logging.getLogger(__name__)

# Outcome statuses (renderer.result.SecretOutcome) of a Secret that kubestash cannot write.
UNWRITABLE = frozenset({"skipped", "failed"})
WRITABLE = frozenset({"applied", "unchanged", "dry-run"})

CHANGED = "value differs"
MISSING = "key missing"
SECRET_MISSING = "Secret missing"

DesiredGetter = Callable[[], Mapping[SecretRef, DesiredSecret]]
Heal = Callable[[list[SecretRef]], Any]


@dataclass
class _Published:
    """Keys of one Secret that have drift series, and which of them drift."""

    keys: frozenset[str] = frozenset()
    drifting: dict[str, str] = field(default_factory=dict)


class DriftMonitor:
    """Detect, report and (outside dry run) repair drift of managed Secrets.

    `desired` returns the sync engine's desired state ({SecretRef: DesiredSecret}); `heal`
    re-applies a list of Secrets (the service runs `syncer.sync_secrets(refs,
    trigger="drift")` through its scheduler). `heal` may block until the sync ends or only
    queue it: a repair counts as done when the watch shows the Secret without drift.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        desired: DesiredGetter,
        dry_run: bool,
        heal: Heal | None = None,
        events: EventRecorder | None = None,
        request_timeout: float = 15.0,
        watch_timeout: int = 300,
        settle_seconds: float = 3.0,
        repair_timeout: float = 30.0,
        loop_window: float = 60.0,
        backoff_initial: float = 5.0,
        backoff_max: float = 300.0,
    ) -> None:
        self._desired = desired
        self.dry_run = dry_run
        self._heal = heal
        self._events = events
        self.settle_seconds = settle_seconds
        self.schedule = RepairSchedule(
            repair_timeout=repair_timeout,
            loop_window=loop_window,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._published: dict[SecretRef, _Published] = {}
        self._unconfirmed: dict[SecretRef, float] = {}
        self._unwritable: set[SecretRef] = set()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None
        self.repaired_total = 0
        self.watch = SecretWatch(
            api_client,
            on_relist=self._on_relist,
            on_change=self._on_change,
            request_timeout=request_timeout,
            watch_timeout=watch_timeout,
        )

    def start(self) -> None:
        """Start the watch and the repair timer; both run until stop()."""
        self._stopping.clear()
        self.watch.start()
        if self._timer is None:
            self._timer = threading.Thread(target=self._run_timer, name="drift-timer", daemon=True)
            self._timer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and drop the drift series, which a stopped monitor no longer updates.

        A replica that loses the leader Lease stops its monitor, and stale series from it
        would keep a drift alert firing.
        """
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        self.watch.stop(timeout)
        if self._timer is not None:
            self._timer.join(timeout)
            self._timer = None
        with self._lock:
            for ref, published in self._published.items():
                for key in published.keys:
                    _remove_series(ref, key)
            self._published.clear()
            self._unconfirmed.clear()

    def on_sync(self, result: Any = None) -> None:
        """Re-check every Secret against the desired state after a sync.

        Drops the series of keys that left the table. A Secret that only now shows drift is
        held back for `settle_seconds`, because the watch may not have delivered the writes of
        this very sync yet.
        """
        desired = dict(self._desired())
        now = time.monotonic()
        with self._lock:
            self._note_outcomes(result)
            for ref in list(self._published):
                if ref not in desired:
                    self._forget(ref)
            for ref, secret in desired.items():
                drift = self._evaluate(ref, secret)
                published = self._published.get(ref)
                known = published.drifting if published else {}
                if drift and not drift.keys() <= known.keys():
                    self._unconfirmed.setdefault(ref, now + self.settle_seconds)
                    self._publish(ref, secret, known)
                    continue
                self._unconfirmed.pop(ref, None)
                self._apply(ref, secret, drift, from_watch=False)
            self._wake.notify_all()
        logger.debug("drift checked after sync %s", _field(result, "sync_id"))

    def _note_outcomes(self, result: Any) -> None:
        for outcome in _field(result, "secrets") or ():
            ref = SecretRef(_field(outcome, "namespace"), _field(outcome, "name"))
            status = _field(outcome, "status")
            if status in UNWRITABLE:
                self._unwritable.add(ref)
            elif status in WRITABLE:
                self._unwritable.discard(ref)

    def snapshot(self) -> dict[str, Any]:
        """Return drifting keys by Secret, repair state and watch state (JSON-safe, no values)."""
        now = time.monotonic()
        with self._lock:
            secrets = []
            for ref in sorted(self._published):
                drifting = self._published[ref].drifting
                if not drifting:
                    continue
                secrets.append(
                    {
                        "namespace": ref.namespace,
                        "name": ref.name,
                        "keys": [{"key": k, "reason": drifting[k]} for k in sorted(drifting)],
                        "managers": sorted(_managers(self.watch.get(ref), drifting)),
                        "repair": self._describe_repair(ref, now),
                    }
                )
        desired = dict(self._desired())
        failed = [
            {
                "namespace": ref.namespace,
                "name": ref.name,
                "keys": [{"key": k, "reason": secret.failed[k]} for k in sorted(secret.failed)],
            }
            for ref, secret in sorted(desired.items())
            if secret.failed
        ]
        return {
            "dry_run": self.dry_run,
            "watching": self.watch.watching,
            "resource_version": self.watch.resource_version,
            "live_secrets": self.watch.size(),
            "drifting_secrets": len(secrets),
            "drifting_keys": sum(len(s["keys"]) for s in secrets),
            "repairs": self.repaired_total,
            "secrets": secrets,
            "failed": failed,
            "managed": {
                "secrets": len(desired),
                "keys": sum(len(table_keys(secret)) for secret in desired.values()),
            },
        }

    def is_drifting(self, namespace: str, name: str, key: str) -> bool:
        with self._lock:
            published = self._published.get(SecretRef(namespace, name))
            return bool(published and key in published.drifting)

    def _on_relist(self) -> None:
        desired = dict(self._desired())
        with self._lock:
            self._unconfirmed.clear()
            for ref, secret in desired.items():
                self._apply(ref, secret, self._evaluate(ref, secret), from_watch=True)

    def _on_change(self, ref: SecretRef) -> None:
        desired = self._desired()
        secret = desired.get(ref)
        if secret is None:
            return
        with self._lock:
            self._unconfirmed.pop(ref, None)
            self._apply(ref, secret, self._evaluate(ref, secret), from_watch=True)
            self._wake.notify_all()

    def _evaluate(self, ref: SecretRef, secret: DesiredSecret) -> dict[str, str]:
        """Return {key: reason} for the keys of `secret` that the live Secret does not match."""
        if ref in self._unwritable:
            return {}
        wanted = desired_data(secret)
        failed = failed_keys(secret)
        live = self.watch.get(ref)
        drift: dict[str, str] = {}
        for key, value in wanted.items():
            if key in failed:
                continue
            if live is None:
                drift[key] = SECRET_MISSING
            elif key not in live.data:
                drift[key] = MISSING
            elif live.data[key] != value:
                drift[key] = CHANGED
        return drift

    def _apply(
        self, ref: SecretRef, secret: DesiredSecret, drift: dict[str, str], *, from_watch: bool
    ) -> None:
        previous = self._published.get(ref)
        self._publish(ref, secret, drift)
        if previous is None or previous.drifting != drift:
            self._log_change(ref, drift, from_watch=from_watch)
        if self.dry_run or self._heal is None:
            return
        if not drift:
            self._finish_repair(ref)
        elif from_watch:
            self._plan_repair(ref, drift)

    def _publish(self, ref: SecretRef, secret: DesiredSecret, drift: dict[str, str]) -> None:
        keys = table_keys(secret)
        previous = self._published.get(ref)
        if previous is not None:
            for key in previous.keys - keys:
                metrics.forget_key(ref.namespace, ref.name, key)
        for key in keys:
            metrics.key_drift.labels(ref.namespace, ref.name, key).set(1 if key in drift else 0)
        self._published[ref] = _Published(keys, dict(drift))

    def _forget(self, ref: SecretRef) -> None:
        published = self._published.pop(ref)
        self._unwritable.discard(ref)
        for key in published.keys:
            metrics.forget_key(ref.namespace, ref.name, key)
        self.schedule.forget(ref)
        self._unconfirmed.pop(ref, None)

    def _log_change(self, ref: SecretRef, drift: dict[str, str], *, from_watch: bool) -> None:
        if not drift:
            logger.debug("Secret %s matches the table", ref)
            return
        live = self.watch.get(ref)
        managers = _managers(live, drift)
        keys = ", ".join(f"{k} ({drift[k]})" for k in sorted(drift))
        by = f", changed by field manager {', '.join(sorted(managers))}" if managers else ""
        if self.dry_run:
            action = "reported only (dry run)"
        elif self._heal is None:
            action = "reported only"
        else:
            action = "will be repaired"
        level = logging.WARNING if from_watch else logging.INFO
        logger.log(level, "Secret %s drifted from the table: %s%s; %s", ref, keys, by, action)

    def _plan_repair(self, ref: SecretRef, drift: dict[str, str]) -> None:
        managers = _managers(self.watch.get(ref), drift)
        self.schedule.plan(ref, frozenset(drift), managers, time.monotonic())

    def _finish_repair(self, ref: SecretRef) -> None:
        done = self.schedule.finish(ref, time.monotonic())
        if done is None:
            return
        logger.info("Repaired drift in Secret %s: keys %s", ref, ", ".join(sorted(done.keys)))
        self.repaired_total += 1
        if self._events is not None:
            self._events.record_drift_repaired(ref.namespace, ref.name, done.keys, done.managers)

    def _run_timer(self) -> None:
        """Start due repairs, time out stuck ones and publish drift held back after a sync."""
        while not self._stopping.is_set():
            with self._wake:
                self._wake.wait(self._next_wakeup())
                if self._stopping.is_set():
                    return
                refs = self._take_due()
            if refs:
                self._run_heal(refs)

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        moments = list(self._unconfirmed.values())
        repair = self.schedule.next_moment()
        if repair is not None:
            moments.append(repair)
        return max(0.0, min(moments, default=now + 1.0) - now)

    def _take_due(self) -> list[SecretRef]:
        now = time.monotonic()
        desired = self._desired()
        for ref, deadline in list(self._unconfirmed.items()):
            if deadline <= now:
                del self._unconfirmed[ref]
                secret = desired.get(ref)
                if secret is not None:
                    self._apply(ref, secret, self._evaluate(ref, secret), from_watch=False)
        return self.schedule.take_due(now)

    def _run_heal(self, refs: list[SecretRef]) -> None:
        names = ", ".join(str(ref) for ref in refs)
        logger.info("Re-applying drifted Secrets: %s", names)
        try:
            self._heal(refs)  # type: ignore[misc]
        except Exception:
            logger.exception("Re-applying drifted Secrets %s failed", names)
            with self._lock:
                self.schedule.failed(refs, time.monotonic())

    def _describe_repair(self, ref: SecretRef, now: float) -> str:
        if self.dry_run:
            return "dry run: not repaired"
        if self._heal is None:
            return ""
        return self.schedule.describe(ref, now)


def desired_data(secret: DesiredSecret) -> dict[str, str]:
    """Return the base64 `data` that kubestash applies for one desired Secret."""
    return secret.data


def failed_keys(secret: DesiredSecret) -> frozenset[str]:
    """Return the keys that failed to decrypt; the Secret keeps their last good value."""
    return frozenset(secret.failed)


def table_keys(secret: DesiredSecret) -> frozenset[str]:
    """Return every key the table names for this Secret, failed ones included."""
    return frozenset(secret.sources)


def _field(obj: Any, name: str) -> Any:
    """Read a field of a SyncResult or SecretOutcome, or of their to_dict() form."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _remove_series(ref: SecretRef, key: str) -> None:
    try:
        metrics.key_drift.remove(ref.namespace, ref.name, key)
    except KeyError:
        pass


def _managers(live: LiveSecret | None, keys: Iterable[str]) -> frozenset[str]:
    if live is None:
        return frozenset()
    found: set[str] = set()
    for key in keys:
        found.update(live.managers.get(key, ()))
    return frozenset(found)
