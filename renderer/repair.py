"""When to re-apply a drifting Secret: at once, then with backoff while it keeps drifting.

Another controller, or a script, that keeps writing a key kubestash owns would otherwise start
a repair loop: kubestash re-applies the Secret, the other writer changes it back, and so on.
A Secret that drifts again within `loop_window` seconds of its last repair waits
`backoff_initial * 2 ** (n - 1)` seconds (at most `backoff_max`) before its n-th repair in a
row, and each wait is logged with the field managers involved. A repair that does not show in
the watch within `repair_timeout` seconds, or whose re-apply raised, counts the same way.

The schedule is not thread-safe; its owner (renderer.drift.DriftMonitor) holds a lock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from renderer.names import SecretRef

logger = logging.getLogger(__name__)


@dataclass
class Repair:
    """Repair state of one Secret; times are time.monotonic() values."""

    due: float | None = None
    started: float | None = None
    repaired_at: float = -math.inf
    strikes: int = 0
    keys: frozenset[str] = frozenset()
    managers: frozenset[str] = frozenset()


class RepairSchedule:
    """Repairs planned, running and recently finished, by Secret."""

    def __init__(
        self,
        *,
        repair_timeout: float = 30.0,
        loop_window: float = 60.0,
        backoff_initial: float = 5.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.repair_timeout = repair_timeout
        self.loop_window = loop_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.repairs: dict[SecretRef, Repair] = {}

    def plan(
        self, ref: SecretRef, keys: frozenset[str], managers: frozenset[str], now: float
    ) -> None:
        """Plan a repair of a Secret that a watch event showed drifting."""
        repair = self.repairs.setdefault(ref, Repair())
        repair.keys = repair.keys | keys
        repair.managers = repair.managers | managers
        if repair.due is not None or repair.started is not None:
            return

        since = now - repair.repaired_at
        repair.strikes = repair.strikes + 1 if since < self.loop_window else 0
        delay = self.backoff(repair.strikes)
        repair.due = now + delay
        if repair.strikes:
            logger.warning(
                "Secret %s drifted again %.0f seconds after its last repair (keys %s, "
                "field managers %s); next repair in %.0f seconds",
                ref,
                since,
                ", ".join(sorted(keys)),
                ", ".join(sorted(repair.managers)) or "unknown",
                delay,
            )

    def finish(self, ref: SecretRef, now: float) -> Repair | None:
        """Note that a Secret no longer drifts; return its repair if one was running."""
        repair = self.repairs.get(ref)
        if repair is None:
            return None
        repair.due = None
        if repair.started is None:
            return None

        done = Repair(keys=repair.keys, managers=repair.managers)
        repair.started = None
        repair.repaired_at = now
        repair.keys = frozenset()
        repair.managers = frozenset()
        return done

    def take_due(self, now: float) -> list[SecretRef]:
        """Return the Secrets to re-apply now and mark their repairs as started."""
        refs = []
        for ref, repair in self.repairs.items():
            if repair.started is not None and now - repair.started >= self.repair_timeout:
                self._retry(ref, repair, now)
                logger.warning(
                    "repair of Secret %s did not take effect within %.0f seconds; "
                    "retrying in %.0f seconds",
                    ref,
                    self.repair_timeout,
                    repair.due - now,  # type: ignore[operator]
                )
            if repair.due is not None and repair.due <= now and repair.started is None:
                repair.due = None
                repair.started = now
                refs.append(ref)
        return refs

    def failed(self, refs: list[SecretRef], now: float) -> None:
        """Plan another attempt, with backoff, for repairs whose re-apply raised."""
        for ref in refs:
            repair = self.repairs.get(ref)
            if repair is not None and repair.started is not None:
                self._retry(ref, repair, now)

    def forget(self, ref: SecretRef) -> None:
        self.repairs.pop(ref, None)

    def next_moment(self) -> float | None:
        """Return the earliest time at which take_due() has work, or None."""
        moments = []
        for repair in self.repairs.values():
            if repair.due is not None:
                moments.append(repair.due)
            if repair.started is not None:
                moments.append(repair.started + self.repair_timeout)
        return min(moments, default=None)

    def describe(self, ref: SecretRef, now: float) -> str:
        repair = self.repairs.get(ref)
        if repair is None:
            return ""
        if repair.started is not None:
            return "repair in progress"
        if repair.due is not None:
            return f"repair in {max(0.0, repair.due - now):.0f} s"
        return ""

    def backoff(self, strikes: int) -> float:
        if strikes == 0:
            return 0.0
        return min(self.backoff_max, self.backoff_initial * 2 ** (strikes - 1))

    def _retry(self, ref: SecretRef, repair: Repair, now: float) -> None:
        repair.started = None
        repair.strikes += 1
        repair.due = now + self.backoff(repair.strikes)
