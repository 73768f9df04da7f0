"""Outcomes of a sync: per Secret and for the whole run, JSON-safe and free of values."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

RESULTS = ("success", "partial", "failed", "timeout", "blocked")
ACTION_COUNTS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "unchanged": "unchanged",
    "skip": "skipped",
}


@dataclass
class SecretOutcome:
    """The change a sync made (or, in a dry run, would make) to one Secret.

    `action` is the plan: create (kubestash does not manage the Secret yet), update,
    delete, unchanged or skip. `status` is what happened: applied, dry-run, unchanged,
    skipped, failed or not-applied (the sync ran out of time before it).
    """

    namespace: str
    name: str
    action: str
    status: str
    keys_added: list[str] = field(default_factory=list)
    keys_changed: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)
    keys_failed: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed" or bool(self.keys_failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "action": self.action,
            "status": self.status,
            "keys_added": list(self.keys_added),
            "keys_changed": list(self.keys_changed),
            "keys_removed": list(self.keys_removed),
            "keys_failed": dict(self.keys_failed),
            "error": self.error,
        }


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else ""


@dataclass
class SyncResult:
    """One full or incremental sync: what it read, planned, applied and how it ended."""

    sync_id: str
    trigger: str
    kind: str
    dry_run: bool
    started_at: float
    finished_at: float = 0.0
    result: str = "success"
    step: str = "start"
    counts: dict[str, int] = field(default_factory=dict)
    secrets: list[SecretOutcome] = field(default_factory=list)
    error: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at) if self.finished_at else 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.result == "success" else 1

    @property
    def preview(self) -> list[dict[str, Any]]:
        """Per Secret that changes: the keys to add, change and remove (names only)."""
        return [
            {
                "namespace": outcome.namespace,
                "name": outcome.name,
                "action": outcome.action,
                "keys_added": list(outcome.keys_added),
                "keys_changed": list(outcome.keys_changed),
                "keys_removed": list(outcome.keys_removed),
            }
            for outcome in self.secrets
            if outcome.action in ("create", "update", "delete")
        ]

    def record(self, outcomes: list[SecretOutcome]) -> None:
        """Store the per-Secret outcomes, count them and decide the result."""
        self.secrets = outcomes
        for name in ("keys_added", "keys_changed", "keys_removed"):
            self.counts[name] = sum(len(getattr(outcome, name)) for outcome in outcomes)
        self.counts["keys_failed"] = sum(len(outcome.keys_failed) for outcome in outcomes)
        for label in (*ACTION_COUNTS.values(), "failed", "not_applied"):
            self.counts[label] = 0
        for outcome in outcomes:
            self.counts[_count_label(outcome)] += 1
        self.result = classify(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sync_id": self.sync_id,
            "trigger": self.trigger,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "started_at": _rfc3339(self.started_at),
            "finished_at": _rfc3339(self.finished_at),
            "seconds": round(self.seconds, 3),
            "result": self.result,
            "step": self.step,
            "error": self.error,
            "counts": dict(self.counts),
            "secrets": [outcome.to_dict() for outcome in self.secrets],
        }

    def summary_text(self) -> str:
        """Return a few lines for people: the result, the counts and each Secret that changed."""
        mode = "dry run" if self.dry_run else "applied"
        lines = [
            f"sync {self.sync_id} ({self.kind}, trigger {self.trigger}, {mode}): "
            f"{self.result} in {self.seconds:.2f} s"
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        counts = self.counts
        if "names" in counts:
            lines.append(
                f"  table: {counts.get('names', 0)} names "
                f"({counts.get('ignored', 0)} ignored, {counts.get('invalid', 0)} invalid, "
                f"{counts.get('excluded', 0)} excluded), {counts.get('keys', 0)} keys "
                f"in {counts.get('secrets', 0)} Secrets"
            )
            lines.append(
                f"  decrypt: {counts.get('cache_hits', 0)} from cache, "
                f"{counts.get('decrypted', 0)} decrypted with KMS, "
                f"{counts.get('decrypt_failed', 0)} failed"
            )
        lines.append(
            "  Secrets: "
            + ", ".join(
                f"{counts.get(name, 0)} {name}"
                for name in ("created", "updated", "deleted", "unchanged", "skipped", "failed")
            )
        )
        for outcome in self.secrets:
            line = _outcome_line(outcome)
            if line:
                lines.append(line)
        return "\n".join(lines)


def _outcome_line(outcome: SecretOutcome) -> str:
    ref = f"{outcome.namespace}/{outcome.name}"
    if outcome.status in ("skipped", "failed", "not-applied"):
        return f"  ! {ref}: {outcome.status}: {outcome.error or 'see the log'}"
    if outcome.action == "unchanged" and not outcome.keys_failed:
        return ""
    parts = []
    for label, keys in (
        ("add", outcome.keys_added),
        ("change", outcome.keys_changed),
        ("remove", outcome.keys_removed),
    ):
        if keys:
            parts.append(f"{label} {', '.join(keys)}")
    if outcome.keys_failed:
        parts.append(f"failed {', '.join(sorted(outcome.keys_failed))}")
    sign = "-" if outcome.action == "delete" else "+"
    return f"  {sign} {ref} ({outcome.action}): {'; '.join(parts) or 'metadata only'}"


def _count_label(outcome: SecretOutcome) -> str:
    if outcome.status == "failed":
        return "failed"
    if outcome.status == "not-applied":
        return "not_applied"
    if outcome.status == "skipped":
        return "skipped"
    return ACTION_COUNTS[outcome.action]


def classify(result: SyncResult) -> str:
    """Decide how a sync ended once its Secrets are done.

    A skip for a missing namespace is reported but is no failure: tables are often shared
    by clusters that do not have every namespace.
    """
    if result.result in ("failed", "timeout"):
        return result.result
    statuses = [outcome.status for outcome in result.secrets]
    writes = [s for s in statuses if s in ("applied", "dry-run", "failed", "not-applied")]
    if "not-applied" in statuses:
        return "timeout"
    if writes and all(status == "failed" for status in writes):
        return "failed"
    if result.result == "blocked":
        return "blocked"
    if any(outcome.failed for outcome in result.secrets) or result.counts.get("decrypt_failed"):
        return "partial"
    return "success"
