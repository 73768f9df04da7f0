"""Carry out sync plans: server-side apply or delete each Secret, in a bounded thread pool.

A failure in one Secret becomes that Secret's outcome and never stops the others. Nothing
starts after the sync's deadline or after `abandon`, so a stopped sync leaves no Secret
half-written (each apply is one request).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from renderer.compare import SecretPlan
from renderer.kube import KubeClient, KubeError
from renderer.names import SecretRef
from renderer.result import SecretOutcome

logger = logging.getLogger(__name__)


def apply_plans(
    kube: KubeClient,
    plans: list[SecretPlan],
    *,
    dry_run: bool,
    workers: int,
    deadline: float | None = None,
    stop: threading.Event | None = None,
) -> dict[SecretRef, SecretOutcome]:
    """Write every plan that changes something; return an outcome for every plan."""
    outcomes: dict[SecretRef, SecretOutcome] = {}
    writes = [plan for plan in plans if plan.writes]
    for plan in plans:
        if not plan.writes:
            outcomes[plan.ref] = outcome_of(plan, _status_without_write(plan))

    def run(plan: SecretPlan) -> SecretOutcome:
        stopped = stop is not None and stop.is_set()
        if stopped or (deadline is not None and time.monotonic() > deadline):
            return outcome_of(plan, "not-applied", "the sync stopped before this Secret")
        return write_plan(kube, plan, dry_run=dry_run)

    if writes:
        with ThreadPoolExecutor(min(workers, len(writes)), thread_name_prefix="apply") as pool:
            for plan, outcome in zip(writes, pool.map(run, writes), strict=True):
                outcomes[plan.ref] = outcome
    return outcomes


def _status_without_write(plan: SecretPlan) -> str:
    """Return the status of a plan without a write: a missing namespace is a plain skip,
    a non-Opaque or oversized Secret a failure."""
    if plan.action != "skip":
        return "unchanged"
    return "skipped" if plan.missing_namespace else "failed"


def outcome_of(plan: SecretPlan, status: str, error: str = "") -> SecretOutcome:
    return SecretOutcome(
        namespace=plan.ref.namespace,
        name=plan.ref.name,
        action=plan.action,
        status=status,
        keys_added=list(plan.keys_added),
        keys_changed=list(plan.keys_changed),
        keys_removed=list(plan.keys_removed),
        keys_failed=dict(plan.keys_failed),
        error=error or plan.error,
    )


def write_plan(kube: KubeClient, plan: SecretPlan, *, dry_run: bool) -> SecretOutcome:
    """Send the apply or delete of one plan; failures become the outcome, never raised."""
    done = "dry-run" if dry_run else "applied"
    try:
        if plan.action == "delete":
            live = plan.live
            kube.delete_secret(
                plan.ref, resource_version=live.resource_version if live else None, dry_run=dry_run
            )
        else:
            kube.apply_secret(plan.body or {}, dry_run=dry_run)
    except KubeError as exc:
        return _failed_write(kube, plan, exc)

    logger.debug("Secret %s %s (%s)", plan.ref, plan.action, done)
    return outcome_of(plan, done)


def _failed_write(kube: KubeClient, plan: SecretPlan, error: KubeError) -> SecretOutcome:
    """Report a rejected write; a missing namespace or a non-Opaque Secret is a skip."""
    if error.status == 404 and plan.action != "delete":
        # SSA creates a missing Secret, so a 404 means its namespace does not exist.
        message = f"namespace {plan.ref.namespace} not found; kubestash does not create namespaces"
        logger.warning("Secret %s skipped: %s", plan.ref, message)
        outcome = outcome_of(plan, "skipped", message)
        outcome.keys_failed = {}
        return outcome
    if error.status == 422 and any(cause.get("field") == "type" for cause in error.causes):
        # The API server rejects a change of `type`: read the Secret to name its type.
        try:
            live_type = (kube.get_secret(plan.ref) or {}).get("type", "")
        except KubeError:
            live_type = ""
        message = (
            f"the Secret has type {live_type or 'other than Opaque'}; "
            "kubestash writes only Opaque Secrets"
        )
        logger.error("Secret %s failed: %s", plan.ref, message)
        return outcome_of(plan, "failed", message)
    if error.status == 409 and plan.action == "delete":
        message = "the Secret changed after kubestash read it; the next sync tries again"
        logger.warning("Secret %s not deleted: %s", plan.ref, message)
        return outcome_of(plan, "failed", message)

    message = error.message[:300]
    logger.error("Secret %s failed: %s", plan.ref, message)
    return outcome_of(plan, "failed", message)
