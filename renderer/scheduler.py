"""Sync scheduling in service mode: one sync at a time, debounce, cron and watchdog.

Every trigger (start-up, the cron schedule, POST /render, stream records, stream recovery)
becomes a job here, and one worker task runs the jobs one after another on a worker thread.
Full syncs requested while a sync runs are coalesced into one follow-up per set of options;
Secrets named by stream records collect in a batch that is applied `WAIT_TIME` seconds after
its first record, so a burst costs one incremental sync per Secret.

A sync longer than `CREDSTASH_SYNC_TIMEOUT_SECS` is abandoned. If its thread does not return
within a grace period, the scheduler reports itself stuck: /healthz then fails so that the
kubelet restarts the container, because a Python thread cannot be killed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from renderer import metrics
from renderer.settings import Settings

logger = logging.getLogger(__name__)

READY_RESULTS = frozenset({"success", "partial", "blocked"})


@dataclass
class Ticket:
    """One caller's request for a full sync; its future receives the sync summary."""

    request_id: str
    future: asyncio.Future[dict[str, Any]]


@dataclass
class Job:
    trigger: str
    kind: str
    dry_run: bool | None = None
    allow_mass_delete: bool = False
    refs: frozenset[Any] = frozenset()
    tickets: list[Ticket] = field(default_factory=list)


@dataclass
class Stuck:
    """A sync that was abandoned and whose worker thread has not returned."""

    sync_id: str | None
    trigger: str
    step: str | None
    since: float


@dataclass(frozen=True)
class ScheduleTiming:
    """Timing knobs that are not settings; tests shorten them."""

    jitter: float = 0.1
    grace_seconds: float | None = None
    startup_retry_initial: float = 30.0
    startup_retry_max: float = 300.0
    history_size: int = 20


def run_in_daemon_thread(func: Callable[[], Any], *, name: str) -> asyncio.Future[Any]:
    """Run a blocking call on a new daemon thread and return a future for its result.

    A daemon thread, unlike a ThreadPoolExecutor worker, is not joined at interpreter exit,
    so a sync stuck on a hanging API cannot keep the process alive after SIGTERM.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)

    def target() -> None:
        outcome: Any = None
        error: BaseException | None = None
        try:
            outcome = func()
        except BaseException as caught:
            error = caught
        try:
            loop.call_soon_threadsafe(settle, outcome, error)
        except RuntimeError:
            logger.debug("thread %s finished after the event loop closed", name)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


class Scheduler:
    """Runs syncs one at a time and decides when the next one is due."""

    def __init__(self, syncer: Any, settings: Settings, timing: ScheduleTiming | None = None):
        self._syncer = syncer
        self._settings = settings
        self._timing = timing or ScheduleTiming()
        self._grace = self._timing.grace_seconds
        if self._grace is None:
            # The Kubernetes client tries a request up to five times, each with HTTP_TIMEOUT.
            self._grace = 6 * settings.http_timeout + 15

        self._pending_full: dict[tuple[bool | None, bool], Job] = {}
        self._refs: set[Any] = set()
        self._refs_due: float | None = None
        self._repair_refs: set[Any] = set()
        self.listeners: list[Callable[[Job, dict[str, Any]], None]] = []
        self._next_full_at: float | None = None
        self._next_full_trigger = "schedule"
        self._startup_failures = 0

        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._running: tuple[Job, asyncio.Future[Any], float] | None = None
        self.stuck: Stuck | None = None
        self.ready = False
        self.history: deque[dict[str, Any]] = deque(maxlen=self._timing.history_size)

    @property
    def active(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        """Start the worker and queue the start-up full sync."""
        if self.active:
            return
        self._worker = asyncio.create_task(self._work(), name="scheduler")
        self.request_full("startup")

    async def stop(self, *, timeout: float) -> bool:
        """Stop the worker; abandon a running sync and wait up to `timeout` for its thread.

        Returns True when no sync thread is left running.
        """
        finished = True
        if self._running is not None:
            job, future, _ = self._running
            logger.info("abandoning the %s sync in flight (trigger %s)", job.kind, job.trigger)
            self._syncer.abandon()
            done, _ = await asyncio.wait({future}, timeout=timeout)
            finished = bool(done)
            if not finished:
                logger.error("the sync thread did not stop within %.1f seconds", timeout)

        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

        for job in self._pending_full.values():
            self._fail_tickets(job, "the service stopped before this sync ran")
        self._pending_full.clear()
        self._refs.clear()
        self._refs_due = None
        self._repair_refs.clear()
        self._next_full_at = None
        return finished

    def request_full(
        self, trigger: str, *, dry_run: bool | None = None, allow_mass_delete: bool = False
    ) -> Ticket:
        """Queue a full sync, joining an already queued one with the same options."""
        key = (dry_run, allow_mass_delete)
        job = self._pending_full.get(key)
        if job is None:
            job = Job(trigger, "full", dry_run=dry_run, allow_mass_delete=allow_mass_delete)
            self._pending_full[key] = job
        else:
            logger.debug("full sync for %s joins the queued %s sync", trigger, job.trigger)

        ticket = Ticket(uuid.uuid4().hex[:12], asyncio.get_running_loop().create_future())
        job.tickets.append(ticket)
        self._wake.set()
        return ticket

    def add_refs(self, refs: Iterable[Any]) -> None:
        """Add Secrets named by stream records to the next incremental batch."""
        before = len(self._refs)
        self._refs.update(refs)
        if before == 0 and self._refs:
            self._refs_due = time.monotonic() + self._settings.wait_time
            self._wake.set()

    def repair(self, refs: Iterable[Any]) -> None:
        """Queue drifting Secrets for an incremental sync without the stream's debounce."""
        self._repair_refs.update(refs)
        if self._repair_refs:
            self._wake.set()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        running = None
        if self._running is not None:
            job, _, started = self._running
            progress = self._syncer.progress
            running = {
                "trigger": job.trigger,
                "kind": job.kind,
                "sync_id": progress[0] if progress else None,
                "step": progress[1] if progress else None,
                "running_seconds": round(now - started, 3),
            }
        pending_refs = sorted(f"{ref[0]}/{ref[1]}" for ref in self._refs)
        return {
            "active": self.active,
            "ready": self.ready,
            "running": running,
            "queued_full_syncs": [job.trigger for job in self._pending_full.values()],
            "pending_secrets": pending_refs,
            "pending_due_in_seconds": _seconds_until(self._refs_due, now),
            "next_full_sync_in_seconds": _seconds_until(self._next_full_at, now),
            "stuck": None if self.stuck is None else self._stuck_status(now),
            "history": list(self.history),
        }

    def _stuck_status(self, now: float) -> dict[str, Any]:
        assert self.stuck is not None
        return {
            "sync_id": self.stuck.sync_id,
            "trigger": self.stuck.trigger,
            "step": self.stuck.step,
            "stuck_seconds": round(now - self.stuck.since, 3),
        }

    async def _work(self) -> None:
        self._plan_next_full(time.monotonic())
        while True:
            self._wake.clear()
            job = self._next_job(time.monotonic())
            if job is None:
                delay = self._seconds_to_next_job(time.monotonic())
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass
                continue
            await self._run(job)

    def _next_job(self, now: float) -> Job | None:
        if self.stuck is not None:
            return None
        if self._pending_full:
            key = next(iter(self._pending_full))
            return self._pending_full.pop(key)
        if self._next_full_at is not None and now >= self._next_full_at:
            self._next_full_at = None
            return Job(self._next_full_trigger, "full")
        if self._repair_refs:
            refs = frozenset(self._repair_refs)
            self._repair_refs.clear()
            return Job("drift", "incremental", refs=refs)
        if self._refs and self._refs_due is not None and now >= self._refs_due:
            refs = frozenset(self._refs)
            self._refs.clear()
            self._refs_due = None
            return Job("stream", "incremental", refs=refs)
        return None

    def _seconds_to_next_job(self, now: float) -> float | None:
        times = [t for t in (self._next_full_at, self._refs_due) if t is not None]
        if self.stuck is not None or not times:
            return None
        return max(0.0, min(times) - now)

    def _plan_next_full(self, now: float) -> None:
        interval = self._settings.cron_hours * 3600
        spread = random.uniform(-self._timing.jitter, self._timing.jitter)
        self._next_full_at = now + interval * (1 + spread)
        self._next_full_trigger = "schedule"

    def _plan_startup_retry(self, now: float) -> None:
        self._startup_failures += 1
        delay = self._timing.startup_retry_initial * 2 ** (self._startup_failures - 1)
        delay = min(delay, self._timing.startup_retry_max)
        logger.warning("no sync has succeeded yet; retrying a full sync in %.0f seconds", delay)
        self._next_full_at = now + delay
        self._next_full_trigger = "startup"

    async def _run(self, job: Job) -> None:
        deadline = time.monotonic() + self._settings.sync_timeout
        if job.kind == "full":
            call = partial(
                self._syncer.full_sync,
                trigger=job.trigger,
                dry_run=job.dry_run,
                allow_mass_delete=job.allow_mass_delete,
                deadline=deadline,
            )
        else:
            call = partial(
                self._syncer.sync_secrets, job.refs, trigger=job.trigger, deadline=deadline
            )

        started = time.monotonic()
        future = run_in_daemon_thread(call, name=f"sync-{job.trigger}")
        self._running = (job, future, started)
        try:
            summary = await self._await_sync(job, future, deadline)
        finally:
            self._running = None
        summary.setdefault("seconds", round(time.monotonic() - started, 3))
        summary["request_ids"] = [ticket.request_id for ticket in job.tickets]
        self._record(job, summary)

    async def _await_sync(
        self, job: Job, future: asyncio.Future[Any], deadline: float
    ) -> dict[str, Any]:
        # asyncio.wait never cancels the sync's future and, unlike wait_for on Python 3.11,
        # never drops a cancellation of this task that arrives as the future completes.
        done, _ = await asyncio.wait({future}, timeout=_left(deadline))
        if not done:
            return await self._abandon(job, future)
        try:
            result = future.result()
        except Exception as error:
            return self._summarize_error(job, error)
        return self._summarize(result)

    async def _abandon(self, job: Job, future: asyncio.Future[Any]) -> dict[str, Any]:
        progress = self._syncer.progress
        sync_id = progress[0] if progress else None
        step = progress[1] if progress else None
        self._syncer.abandon()
        metrics.table_fetch_status.set(1)
        logger.error(
            "sync %s (trigger %s) timed out after %.0f seconds in step %s; abandoned it",
            sync_id,
            job.trigger,
            self._settings.sync_timeout,
            step,
        )
        done, _ = await asyncio.wait({future}, timeout=self._grace)
        if not done:
            return self._mark_stuck(job, future, sync_id, step)
        try:
            result = future.result()
        except Exception as error:
            return self._summarize_error(job, error)
        return {**self._summarize(result), "abandoned": True}

    def _mark_stuck(
        self, job: Job, future: asyncio.Future[Any], sync_id: str | None, step: str | None
    ) -> dict[str, Any]:
        self.stuck = Stuck(sync_id, job.trigger, step, time.monotonic())
        metrics.sync_total.labels(job.trigger, "timeout").inc()
        logger.error(
            "sync %s did not stop within %.0f seconds after it was abandoned (step %s); "
            "/healthz now fails so that the container is restarted",
            sync_id,
            self._grace,
            step,
        )
        future.add_done_callback(self._unstick)
        return {
            "sync_id": sync_id,
            "trigger": job.trigger,
            "kind": job.kind,
            "result": "timeout",
            "step": step,
            "abandoned": True,
            "error": "the sync did not stop after it was abandoned",
        }

    def _unstick(self, future: asyncio.Future[Any]) -> None:
        if self.stuck is not None:
            logger.warning("abandoned sync %s returned; syncs resume", self.stuck.sync_id)
        self.stuck = None
        self._wake.set()

    def _summarize(self, result: Any) -> dict[str, Any]:
        summary = dict(result.to_dict())
        if getattr(result, "dry_run", False):
            summary["preview"] = getattr(result, "preview", None)
        return summary

    def _summarize_error(self, job: Job, error: Exception) -> dict[str, Any]:
        # NOTE: the syncer reports its own failures as results; an exception means it
        # could not produce one, so the sync is counted here instead.
        metrics.sync_total.labels(job.trigger, "failed").inc()
        logger.error(
            "%s sync (trigger %s) raised %s",
            job.kind,
            job.trigger,
            type(error).__name__,
            exc_info=error,
        )
        return {
            "sync_id": None,
            "trigger": job.trigger,
            "kind": job.kind,
            "result": "failed",
            "error": f"{type(error).__name__}: {error}",
        }

    def _record(self, job: Job, summary: dict[str, Any]) -> None:
        now = time.monotonic()
        outcome = summary.get("result")
        if outcome == "timeout" and self.stuck is None:
            metrics.table_fetch_status.set(1)
            logger.error(
                "sync %s (trigger %s) ended with a timeout in step %s",
                summary.get("sync_id"),
                job.trigger,
                summary.get("step"),
            )

        self.history.append(summary)
        for listener in self.listeners:
            try:
                listener(job, summary)
            except Exception:
                logger.exception(
                    "a listener failed on the result of sync %s", summary.get("sync_id")
                )
        for ticket in job.tickets:
            if not ticket.future.done():
                ticket.future.set_result(summary)

        if job.kind != "full" or job.dry_run:
            return
        if outcome in READY_RESULTS:
            self.ready = True
            self._startup_failures = 0
            self._plan_next_full(now)
        elif not self.ready:
            self._plan_startup_retry(now)
        else:
            self._plan_next_full(now)

    def _fail_tickets(self, job: Job, reason: str) -> None:
        summary = {"sync_id": None, "trigger": job.trigger, "result": "cancelled", "error": reason}
        for ticket in job.tickets:
            if not ticket.future.done():
                ticket.future.set_result(summary)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _seconds_until(moment: float | None, now: float) -> float | None:
    if moment is None:
        return None
    return round(max(0.0, moment - now), 3)
