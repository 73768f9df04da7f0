"""A stand-in for the Syncer, used only where a real sync cannot produce the situation.

It follows the Syncer interface (full_sync, sync_secrets, apply_stream_record, progress,
abandon) and can hold a sync open until the test lets it go.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FakeResult:
    sync_id: str
    trigger: str
    kind: str
    dry_run: bool
    result: str
    step: str = "done"
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FakeSyncer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self.abandoned = threading.Event()
        self.progress: tuple[str, str, float] | None = None
        self.last_preview = None
        self._lock = threading.Lock()
        self._count = 0

    def _run(self, kind: str, trigger: str, detail: Any, dry_run: bool) -> FakeResult:
        with self._lock:
            self._count += 1
            sync_id = f"fake-{self._count}"
            self.calls.append((kind, trigger, detail))
        self.progress = (sync_id, "apply", time.monotonic())
        self.abandoned.clear()
        result = "success"
        if self.hold.is_set():
            while not self.release.wait(0.01):
                if self.abandoned.is_set():
                    result = "timeout"
                    break
        self.progress = None
        return FakeResult(sync_id, trigger, kind, dry_run, result)

    def full_sync(
        self,
        *,
        trigger: str,
        dry_run: bool | None = None,
        allow_mass_delete: bool = False,
        deadline: float | None = None,
    ) -> FakeResult:
        return self._run("full", trigger, allow_mass_delete, bool(dry_run))

    def sync_secrets(self, refs: Any, *, trigger: str, deadline: float | None = None) -> Any:
        return self._run("incremental", trigger, frozenset(refs), False)

    def apply_stream_record(self, record: dict[str, Any]) -> tuple[str, str] | None:
        name = record["dynamodb"]["Keys"]["name"]["S"]
        parts = name.split("/")
        return (parts[0], parts[1]) if len(parts) == 3 else None

    def abandon(self) -> None:
        self.abandoned.set()

    def kinds(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(kind, trigger) for kind, trigger, _ in self.calls]
