"""The sync: scan, decrypt, build the desired Secrets, compare with the live ones, apply.

`Syncer` runs one sync at a time (full or incremental) and keeps the in-memory index of
the table between syncs, so stream records can update single names and a steady-state
resync needs no KMS call and no write.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions

from renderer import metrics
from renderer.apply import apply_plans
from renderer.compare import LiveSecret, SecretPlan, log_plans, plan_secrets
from renderer.decrypt import Decryptor
from renderer.desired import DesiredSecret, desired_secrets
from renderer.index import TableIndex, refresh_index
from renderer.kube import KubeClient, KubeError
from renderer.names import Outcome, SecretRef, parse_name
from renderer.result import SecretOutcome, SyncResult
from renderer.settings import Settings
from renderer.source import CredstashTable, item_from_image, newer

logger = logging.getLogger(__name__)

HISTORY_SIZE = 50
AWS_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


class SyncFailed(Exception):
    """A step failed in a way that leaves nothing safe to apply."""


class Syncer:
    """Runs syncs against one table and one cluster; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        kube: KubeClient | None = None,
        session: boto3.Session | None = None,
        *,
        table: CredstashTable | None = None,
        decryptor: Decryptor | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube if kube is not None else KubeClient(settings)
        session = session or boto3.Session()
        self.table = table or CredstashTable(settings, session)
        self.decryptor = decryptor or Decryptor(settings, session)
        self.index = TableIndex()
        self.history: deque[SyncResult] = deque(maxlen=HISTORY_SIZE)
        self.desired: dict[SecretRef, DesiredSecret] = {}
        self.last_preview: list[dict[str, Any]] = []
        self._sync_lock = threading.Lock()
        self._progress: tuple[str, str, float] | None = None
        self._abandon = threading.Event()
        self._managed_keys = 0
        self._metric_keys: set[tuple[str, str, str]] = set()

    @property
    def progress(self) -> tuple[str, str, float] | None:
        return self._progress

    def abandon(self) -> None:
        """Ask the sync in flight to stop before its next apply."""
        self._abandon.set()

    def full_sync(
        self,
        *,
        trigger: str,
        dry_run: bool | None = None,
        allow_mass_delete: bool = False,
        deadline: float | None = None,
    ) -> SyncResult:
        """Run one full sync; see the module docstring. Never raises for sync failures."""
        dry_run = self.settings.dry_run if dry_run is None else dry_run
        with self._sync_lock:
            result = self._begin("full", trigger, dry_run)
            with self._failures(result):
                self._full(result, allow_mass_delete=allow_mass_delete, deadline=deadline)
            return self._end(result, deadline)

    def sync_secrets(
        self,
        refs: Iterable[SecretRef],
        *,
        trigger: str,
        deadline: float | None = None,
        allow_mass_delete: bool = False,
    ) -> SyncResult:
        """Re-apply only these Secrets from the in-memory index, without a scan."""
        wanted = sorted(set(refs))
        with self._sync_lock:
            result = self._begin("incremental", trigger, self.settings.dry_run)
            with self._failures(result):
                self._incremental(result, wanted, deadline, allow_mass_delete)
            return self._end(result, deadline)

    def apply_stream_record(self, record: dict[str, Any]) -> SecretRef | None:
        """Update the index from one DynamoDB Streams record; return the Secret it names.

        INSERT and MODIFY decrypt the new image (through the cache). REMOVE, and a record
        without a new image (KEYS_ONLY streams), read the latest remaining version of the
        name with a consistent Query, because a record can describe an older version.
        """
        change = record.get("dynamodb") or {}
        keys = change.get("Keys") or {}
        name = (keys.get("name") or {}).get("S", "")
        parsed = parse_name(name, self.settings.namespace_exclude)
        if parsed.outcome is Outcome.INVALID:
            logger.warning("Stream record for %r skipped: invalid name: %s", name, parsed.reason)
            return None
        if parsed.outcome is not Outcome.OK:
            logger.debug("Stream record for %r skipped: %s", name, parsed.reason)
            return None

        event = record.get("eventName", "")
        image = change.get("NewImage")
        if event in ("INSERT", "MODIFY") and image:
            item = item_from_image(image)
            current = self.index.get(name)
            if current is not None and newer(current.item, item):
                # An older version arrived after a newer one: the index is already ahead.
                return parsed.ref
        else:
            item = self.table.latest_version(name)

        if item is None:
            self.index.update(name, parsed, None)
            self.decryptor.forget(name)
        else:
            self.index.update(name, parsed, self.decryptor.decrypt(item))
        logger.debug("Stream %s for %r updates Secret %s", event, name, parsed.ref)
        return parsed.ref

    def _begin(self, kind: str, trigger: str, dry_run: bool) -> SyncResult:
        # The abandon flag is cleared when a sync ends, not here: the scheduler may ask to
        # abandon a sync whose thread has not reached this point yet.
        result = SyncResult(uuid.uuid4().hex[:8], trigger, kind, dry_run, time.time())
        self._progress = (result.sync_id, "start", time.monotonic())
        logger.info(
            "sync %s started (%s, trigger %s%s)",
            result.sync_id,
            kind,
            trigger,
            ", dry run" if dry_run else "",
        )
        return result

    def _end(self, result: SyncResult, deadline: float | None) -> SyncResult:
        result.finished_at = time.time()
        self._progress = None
        self._abandon.clear()
        if deadline is not None and time.monotonic() > deadline and result.result == "success":
            # Nothing was left to apply after the deadline, but the sync still overran it.
            result.result = "timeout"
            result.error = f"the sync ran past its deadline in step {result.step}"
        metrics.sync_total.labels(result.trigger, result.result).inc()
        metrics.sync_duration_seconds.labels(result.kind).observe(result.seconds)
        if result.kind == "full" and result.result == "success" and not result.dry_run:
            metrics.last_success_timestamp.set(result.finished_at)
        if result.dry_run:
            self.last_preview = result.preview
        self.history.append(result)
        log = {"success": logger.info, "partial": logger.warning}.get(result.result, logger.error)
        log(
            "sync %s summary: %s in %.2f s; %s",
            result.sync_id,
            result.result,
            result.seconds,
            ", ".join(f"{key}={value}" for key, value in result.counts.items()),
        )
        return result

    @contextmanager
    def _failures(self, result: SyncResult) -> Iterator[None]:
        """Turn an exception in a sync into a failed result, logged with its step."""
        try:
            yield
        except SyncFailed as exc:
            result.result = "failed"
            result.error = str(exc)
            logger.error("sync %s failed in step %s: %s", result.sync_id, result.step, exc)
        except Exception as exc:
            result.result = "failed"
            result.error = f"unexpected {type(exc).__name__} in step {result.step}"
            logger.exception("sync %s failed in step %s", result.sync_id, result.step)

    @contextmanager
    def _step(self, result: SyncResult, step: str) -> Iterator[None]:
        self._set_step(result, step)
        yield

    def _set_step(self, result: SyncResult, step: str) -> None:
        result.step = step
        if self._progress is not None:
            self._progress = (result.sync_id, step, self._progress[2])

    def _full(self, result: SyncResult, *, allow_mass_delete: bool, deadline: float | None) -> None:
        with self._step(result, "scan"):
            try:
                report = refresh_index(
                    self.index,
                    self.table,
                    self.decryptor,
                    excluded=self.settings.namespace_exclude,
                    sync_id=result.sync_id,
                    on_step=lambda step: self._set_step(result, step),
                )
            except AWS_ERRORS as exc:
                raise SyncFailed(
                    f"scan of table {self.settings.ddb_table} in {self.settings.table_region} "
                    f"failed: {exc}"
                ) from None
        counts = report.counts
        result.counts.update(
            names=counts.ok + counts.ignored + counts.invalid + counts.excluded,
            ignored=counts.ignored,
            invalid=counts.invalid,
            excluded=counts.excluded,
            cache_hits=report.decrypt.cache_hits,
            decrypted=report.decrypt.decrypted,
            decrypt_failed=report.decrypt.failed,
        )
        desired = desired_secrets(self.index.entries())
        self.desired = desired
        self._count_desired(result, desired)

        with self._step(result, "compare"):
            live, namespaces = self._read_live()
            managed = sum(len(secret.owned_data) for secret in live.values())
            self._managed_keys = managed
            plans = self._plan(
                result,
                desired,
                live,
                namespaces=namespaces,
                scanned=result.counts["names"],
                allow_mass_delete=allow_mass_delete,
            )

        with self._step(result, "apply"):
            outcomes = self._execute(result, plans, deadline)
        self._finish(result, plans, outcomes, desired)
        if result.result != "blocked":
            # The guard of the next incremental sync measures against what this sync left
            # managed, not what it found: after a first sync the live count was zero.
            self._managed_keys = sum(len(secret.data) for secret in desired.values())

    def _incremental(
        self,
        result: SyncResult,
        refs: list[SecretRef],
        deadline: float | None,
        allow_mass_delete: bool,
    ) -> None:
        desired = desired_secrets(self.index.entries(), refs)
        # Readers (the drift monitor, the status page) iterate `self.desired` from other
        # threads, so it is replaced, never changed in place.
        updated = dict(self.desired)
        for ref in refs:
            if ref in desired:
                updated[ref] = desired[ref]
            else:
                updated.pop(ref, None)
        self.desired = updated

        with self._step(result, "compare"):
            live: dict[SecretRef, LiveSecret] = {}
            for ref in refs:
                try:
                    obj = self.kube.get_secret(ref)
                except KubeError as exc:
                    raise SyncFailed(f"reading Secret {ref} failed: {exc}") from None
                if obj is not None:
                    live[ref] = LiveSecret.from_object(obj)
            plans = self._plan(
                result,
                desired,
                live,
                namespaces=None,
                scanned=len(self.index.entries()),
                allow_mass_delete=allow_mass_delete,
                refs=refs,
            )

        with self._step(result, "apply"):
            outcomes = self._execute(result, plans, deadline)
        self._finish(result, plans, outcomes, desired, forget=False)

    def _count_desired(self, result: SyncResult, desired: dict[SecretRef, DesiredSecret]) -> None:
        keys = sum(len(secret.keys) for secret in desired.values())
        collisions = 0
        for secret in desired.values():
            for collision in secret.collisions:
                collisions += 1
                logger.warning(
                    "credstash names %s become key %s of Secret %s; using %r",
                    ", ".join(repr(name) for name in (collision.winner, *collision.losers)),
                    collision.key,
                    collision.ref,
                    collision.winner,
                )
        metrics.managed_secrets.set(len(desired))
        metrics.managed_keys.set(keys)
        result.counts.update(secrets=len(desired), keys=keys, collisions=collisions)

    def _read_live(self) -> tuple[dict[SecretRef, LiveSecret], set[str]]:
        excluded = self.settings.namespace_exclude
        try:
            objects = self.kube.list_managed_secrets(excluded)
            namespaces = self.kube.list_namespaces()
        except KubeError as exc:
            raise SyncFailed(f"reading the live Secrets failed: {exc}") from None
        live: dict[SecretRef, LiveSecret] = {}
        for obj in objects:
            secret = LiveSecret.from_object(obj)
            if secret.ref.namespace not in excluded:
                live[secret.ref] = secret
        return live, namespaces

    def _plan(
        self,
        result: SyncResult,
        desired: dict[SecretRef, DesiredSecret],
        live: dict[SecretRef, LiveSecret],
        *,
        namespaces: set[str] | None,
        scanned: int,
        allow_mass_delete: bool,
        refs: list[SecretRef] | None = None,
    ) -> list[SecretPlan]:
        started = time.monotonic()
        plans, decision = plan_secrets(
            refs if refs is not None else sorted(set(desired) | set(live)),
            desired,
            live,
            namespaces=namespaces,
            prune=self.settings.prune,
            managed_keys=max(self._managed_keys, sum(len(s.owned_data) for s in live.values())),
            scanned_names=scanned,
            max_ratio=self.settings.max_delete_ratio,
            allow_mass_delete=allow_mass_delete,
        )
        if decision.blocked:
            logger.error("sync %s mass-deletion guard: %s", result.sync_id, decision.reason)
            result.result = "blocked"
            result.error = decision.reason
        log_plans(result.sync_id, plans, time.monotonic() - started, live=len(live))
        return plans

    def _execute(
        self, result: SyncResult, plans: list[SecretPlan], deadline: float | None
    ) -> dict[SecretRef, SecretOutcome]:
        started = time.monotonic()
        outcomes = apply_plans(
            self.kube,
            plans,
            dry_run=result.dry_run,
            workers=self.settings.apply_workers,
            deadline=deadline,
            stop=self._abandon,
        )
        statuses = [outcome.status for outcome in outcomes.values()]
        logger.info(
            "sync %s apply: %d writes%s, %d failed, %d not applied in %.2f s",
            result.sync_id,
            statuses.count("applied") + statuses.count("dry-run"),
            " (dry run)" if result.dry_run else "",
            statuses.count("failed"),
            statuses.count("not-applied"),
            time.monotonic() - started,
        )
        return outcomes

    def _finish(
        self,
        result: SyncResult,
        plans: list[SecretPlan],
        outcomes: dict[SecretRef, SecretOutcome],
        desired: dict[SecretRef, DesiredSecret],
        *,
        forget: bool = True,
    ) -> None:
        result.record([outcomes[plan.ref] for plan in plans])
        self._update_key_metrics(desired, outcomes, forget=forget)

    def _update_key_metrics(
        self,
        desired: dict[SecretRef, DesiredSecret],
        outcomes: dict[SecretRef, SecretOutcome],
        *,
        forget: bool,
    ) -> None:
        """Set kubestash_key_synced_failed_status per key; drop series of keys that left."""
        seen: set[tuple[str, str, str]] = set()
        for ref, secret in desired.items():
            outcome = outcomes.get(ref)
            if outcome is None or outcome.status == "not-applied":
                continue
            whole_failed = outcome.status == "failed"
            for key in secret.keys:
                failed = whole_failed or key in outcome.keys_failed
                metrics.key_failed.labels(ref.namespace, ref.name, key).set(1 if failed else 0)
                seen.add((ref.namespace, ref.name, key))
        if forget:
            for labels in self._metric_keys - seen:
                metrics.forget_key(*labels)
            self._metric_keys = seen
        else:
            self._metric_keys |= seen
