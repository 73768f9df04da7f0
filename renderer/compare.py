"""Compare live Secrets with desired ones and plan each server-side apply.

kubestash owns exactly the data keys it applies (field manager `kubestash`, operation
Apply in managedFields). Keys it owned and no longer applies are removed by the API server,
unless another manager owns them too. Keys of other managers are never in the body, so
they stay untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from renderer.desired import DesiredSecret, checksum
from renderer.kube import FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from renderer.names import SecretRef

logger = logging.getLogger(__name__)

ANNOTATION_UPDATED_AT = "kubestash.io/updated-at"
ANNOTATION_CHECKSUM = "kubestash.io/checksum"
ANNOTATION_STATUS = "kubestash.io/sync-status"
ANNOTATION_MESSAGE = "kubestash.io/sync-message"
MESSAGE_LIMIT = 256


@dataclass
class LiveSecret:
    """The parts of a live Secret that the comparison reads."""

    ref: SecretRef
    type: str
    resource_version: str
    uid: str
    data: dict[str, str] = field(repr=False)
    labels: dict[str, str]
    annotations: dict[str, str]
    owned_data: set[str]
    owned_labels: set[str]
    owned_annotations: set[str]
    other_data: set[str]

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> LiveSecret:
        metadata = obj.get("metadata") or {}
        owned = _owned_fields(metadata.get("managedFields") or [])
        return cls(
            ref=SecretRef(metadata.get("namespace", ""), metadata.get("name", "")),
            type=obj.get("type") or "Opaque",
            resource_version=metadata.get("resourceVersion", ""),
            uid=metadata.get("uid", ""),
            data=dict(obj.get("data") or {}),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            owned_data=owned["data"],
            owned_labels=owned["labels"],
            owned_annotations=owned["annotations"],
            other_data=owned["other_data"],
        )


def _owned_fields(managed_fields: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Read kubestash's Apply entry of managedFields (FieldsV1: `f:<name>` per field)."""
    owned: dict[str, set[str]] = {"data": set(), "labels": set(), "annotations": set()}
    other_data: set[str] = set()
    for entry in managed_fields:
        fields = entry.get("fieldsV1") or {}
        data_keys = _children(fields.get("f:data"))
        ours = entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        if not ours:
            other_data |= data_keys
            continue
        metadata = fields.get("f:metadata") or {}
        owned["data"] |= data_keys
        owned["labels"] |= _children(metadata.get("f:labels"))
        owned["annotations"] |= _children(metadata.get("f:annotations"))
    owned["other_data"] = other_data
    return owned


def _children(fields: Any) -> set[str]:
    if not isinstance(fields, dict):
        return set()
    return {name[2:] for name in fields if name.startswith("f:")}


@dataclass
class SecretPlan:
    """The change one sync makes to one Secret: create, update, delete, unchanged or skip."""

    ref: SecretRef
    action: str
    body: dict[str, Any] | None = field(default=None, repr=False)
    keys_added: list[str] = field(default_factory=list)
    keys_changed: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)
    keys_failed: dict[str, str] = field(default_factory=dict)
    error: str = ""
    live: LiveSecret | None = None
    keys: int = 0
    missing_namespace: bool = False

    @property
    def writes(self) -> bool:
        return self.action in ("create", "update", "delete")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_secret(
    ref: SecretRef,
    desired: DesiredSecret | None,
    live: LiveSecret | None,
    *,
    prune: bool,
    keep_removed: bool = False,
    now: str | None = None,
) -> SecretPlan:
    """Plan one Secret. `keep_removed` keeps keys that would leave (mass-deletion guard)."""
    if live is not None and live.type != "Opaque":
        error = f"the Secret has type {live.type}; kubestash writes only Opaque Secrets"
        failed = dict.fromkeys(desired.keys if desired else (), "the Secret is not Opaque")
        return SecretPlan(ref, "skip", keys_failed=failed, error=error, live=live)
    if desired is None:
        return _plan_emptied(ref, live, prune=prune, keep_removed=keep_removed, now=now)

    size_error = desired.size_error
    if size_error:
        failed = dict.fromkeys(desired.keys, "the Secret is larger than 1 MiB")
        return SecretPlan(ref, "skip", keys_failed=failed, error=size_error, live=live)

    data = dict(desired.data)
    live_data = live.data if live else {}
    owned = live.owned_data if live else set()
    for key in desired.failed:
        # A failed key with no last good value keeps what the live Secret has, because an
        # apply without the key would make the API server remove it.
        if key not in data and key in live_data:
            data[key] = live_data[key]
    removed = sorted(owned - data.keys())
    if keep_removed:
        for key in removed:
            if key in live_data:
                data[key] = live_data[key]
        removed = []

    # A key that someone else changed by hand is "changed" even though the other manager
    # now owns it; a key with the right value that kubestash does not own yet is "added",
    # because the apply takes ownership of it.
    changed = sorted(key for key in data if key in live_data and live_data[key] != data[key])
    added = sorted(key for key in data if key not in owned and key not in changed)
    message = _message(desired, len(data))
    body = build_body(ref, data, live, failed=bool(desired.failed), message=message, now=now)

    plan = SecretPlan(
        ref,
        "create" if live is None else "update",
        body,
        added,
        changed,
        removed,
        dict(desired.failed),
        live=live,
        keys=len(data),
    )
    if live is not None and not (added or changed or removed) and _metadata_current(live, body):
        plan.action = "unchanged"
        plan.body = None
    return plan


def _plan_emptied(
    ref: SecretRef, live: LiveSecret | None, *, prune: bool, keep_removed: bool, now: str | None
) -> SecretPlan:
    """Plan a managed Secret whose keys all left the table."""
    if live is None or not live.owned_data:
        return SecretPlan(ref, "unchanged", live=live)
    removed = sorted(live.owned_data)
    if keep_removed:
        return SecretPlan(ref, "unchanged", live=live, keys=len(removed))

    others = (set(live.data) - live.owned_data) | live.other_data
    if prune and not others:
        return SecretPlan(ref, "delete", keys_removed=removed, live=live)
    body = build_body(ref, {}, live, failed=False, message="no keys left in the table", now=now)
    return SecretPlan(ref, "update", body, keys_removed=removed, live=live)


def _message(desired: DesiredSecret, key_count: int) -> str:
    if not desired.failed:
        return f"{key_count} keys synced"
    parts = [f"{key}: {reason}" for key, reason in sorted(desired.failed.items())]
    text = f"{len(desired.failed)} of {len(desired.keys)} keys failed; " + "; ".join(parts)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 3] + "..."
    return text


def build_body(
    ref: SecretRef,
    data: dict[str, str],
    live: LiveSecret | None,
    *,
    failed: bool,
    message: str,
    now: str | None = None,
) -> dict[str, Any]:
    """Build the apply body; `updated-at` moves only when the checksum of the data moves."""
    digest = checksum(data)
    updated_at = now or now_rfc3339()
    if live is not None and live.annotations.get(ANNOTATION_CHECKSUM) == digest:
        updated_at = live.annotations.get(ANNOTATION_UPDATED_AT) or updated_at
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {
                ANNOTATION_UPDATED_AT: updated_at,
                ANNOTATION_CHECKSUM: digest,
                ANNOTATION_STATUS: "Failed" if failed else "Synced",
                ANNOTATION_MESSAGE: message,
            },
        },
        "type": "Opaque",
    }
    # Without keys, `data` is left out: the API server then drops the keys kubestash owned,
    # and kubestash claims no part of the map.
    if data:
        body["data"] = data
    return body


def _metadata_current(live: LiveSecret, body: dict[str, Any]) -> bool:
    """True when kubestash owns exactly the label and annotations of `body`, with its values."""
    metadata = body["metadata"]
    labels = metadata["labels"]
    annotations = metadata["annotations"]
    if live.owned_labels != set(labels) or live.owned_annotations != set(annotations):
        return False
    for key, value in labels.items():
        if live.labels.get(key) != value:
            return False
    for key, value in annotations.items():
        if live.annotations.get(key) != value:
            return False
    return True


def plan_secrets(
    refs: list[SecretRef],
    desired: dict[SecretRef, DesiredSecret],
    live: dict[SecretRef, LiveSecret],
    *,
    namespaces: set[str] | None,
    prune: bool,
    managed_keys: int,
    scanned_names: int,
    max_ratio: float,
    allow_mass_delete: bool,
) -> tuple[list[SecretPlan], GuardDecision]:
    """Plan every Secret in `refs`; when the guard blocks, plan again keeping removed keys.

    `namespaces` lists the namespaces that exist (None when unknown, as in an incremental
    sync, where the API server's 404 reports a missing one).
    """
    now = now_rfc3339()

    def build(keep_removed: bool) -> list[SecretPlan]:
        plans = []
        for ref in refs:
            if namespaces is not None and ref.namespace not in namespaces:
                plans.append(missing_namespace(ref, desired.get(ref)))
                continue
            plan = plan_secret(
                ref,
                desired.get(ref),
                live.get(ref),
                prune=prune,
                keep_removed=keep_removed,
                now=now,
            )
            plans.append(plan)
        return plans

    plans = build(False)
    decision = check_guard(
        plans,
        managed_keys=managed_keys,
        scanned_names=scanned_names,
        max_ratio=max_ratio,
        allow=allow_mass_delete,
    )
    if decision.blocked:
        plans = build(True)
    return plans, decision


def missing_namespace(ref: SecretRef, desired: DesiredSecret | None) -> SecretPlan:
    return SecretPlan(
        ref,
        "skip",
        error=f"namespace {ref.namespace} not found; kubestash does not create namespaces",
        keys=len(desired.keys) if desired else 0,
        missing_namespace=True,
    )


def log_plans(sync_id: str, plans: list[SecretPlan], seconds: float, *, live: int) -> None:
    actions = dict.fromkeys(("create", "update", "delete", "unchanged", "skip"), 0)
    for plan in plans:
        actions[plan.action] += 1
        if plan.action == "skip":
            logger.warning("Secret %s skipped: %s", plan.ref, plan.error)
    logger.info(
        "sync %s compare: %d live Secrets, %d to create, %d to update, %d to delete, "
        "%d unchanged, %d skipped in %.2f s",
        sync_id,
        live,
        actions["create"],
        actions["update"],
        actions["delete"],
        actions["unchanged"],
        actions["skip"],
        seconds,
    )


@dataclass
class GuardDecision:
    blocked: bool
    removing: int
    managed: int
    reason: str = ""


def check_guard(
    plans: list[SecretPlan],
    *,
    managed_keys: int,
    scanned_names: int,
    max_ratio: float,
    allow: bool,
) -> GuardDecision:
    """Apply the mass-deletion guard to a full plan.

    Blocks when the plan removes more than `max_ratio` of the keys kubestash manages. Also
    blocks when the scan found no name at all while kubestash manages keys, because an
    empty scan is far more often a wrong table or region than a deliberate wipe.
    """
    removing = sum(len(plan.keys_removed) for plan in plans)
    decision = GuardDecision(False, removing, managed_keys)
    if allow or removing == 0:
        return decision
    if scanned_names == 0 and managed_keys > 0:
        decision.blocked = True
        decision.reason = (
            f"the table scan returned no credstash names while kubestash manages "
            f"{managed_keys} keys; nothing was removed"
        )
    elif removing > max_ratio * managed_keys:
        decision.blocked = True
        decision.reason = (
            f"the sync would remove {removing} of {managed_keys} managed keys, more than "
            f"MAX_DELETE_RATIO {max_ratio:g}; nothing was removed"
        )
    if decision.blocked:
        decision.reason += (
            "; if the removal is intended, run a sync with allow_mass_delete "
            "(POST /render?allow_mass_delete=true or kubestash sync --allow-mass-delete)"
        )
    return decision
