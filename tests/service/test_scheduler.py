"""Scheduling rules that need a sync held open at a chosen moment, or only its timing.

A real sync cannot be paused at a chosen moment, so these tests use the Syncer stand-in
from fakes.py. Debounce, timeouts and the watchdog are tested with the real Syncer in
test_stream.py and test_watchdog.py.
"""

from __future__ import annotations

import pytest

from renderer.names import SecretRef
from renderer.scheduler import ScheduleTiming
from renderer.service import Service
from renderer.settings import Settings

from .fakes import FakeSyncer
from .harness import RunningService, wait_until

BASE = Settings(stream_enabled=False, port=0, wait_time=0.2, api_key="right-key")


def start(syncer: FakeSyncer, settings: Settings = BASE, **timing: float) -> RunningService:
    schedule = ScheduleTiming(**timing) if timing else None
    service = Service(settings, host="127.0.0.1", syncer=syncer, schedule_timing=schedule)
    return RunningService(service)


@pytest.fixture
def syncer() -> FakeSyncer:
    return FakeSyncer()


def test_full_syncs_during_sync_coalesce(syncer: FakeSyncer) -> None:
    syncer.hold.set()
    with start(syncer) as running:
        wait_until(lambda: syncer.progress)
        for _ in range(3):
            running.run(lambda: running.service.scheduler.request_full("render"))
        syncer.release.set()

        wait_until(lambda: len(running.history) == 2)
        assert syncer.kinds() == [("full", "startup"), ("full", "render")]


def test_records_during_sync_go_to_next_batch(syncer: FakeSyncer) -> None:
    syncer.hold.set()
    with start(syncer) as running:
        wait_until(lambda: syncer.progress)
        running.run(lambda: running.service.scheduler.add_refs([SecretRef("team", "db")]))
        syncer.release.set()

        wait_until(lambda: len(syncer.calls) == 2)
        kind, trigger, refs = syncer.calls[1]
        assert (kind, trigger) == ("incremental", "stream")
        assert refs == frozenset({SecretRef("team", "db")})


def test_wait_time_zero_applies_at_once(syncer: FakeSyncer) -> None:
    with start(syncer, BASE.replace(wait_time=0)) as running:
        wait_until(lambda: running.history)
        running.run(lambda: running.service.scheduler.add_refs([SecretRef("team", "db")]))
        wait_until(lambda: len(syncer.calls) == 2, timeout=2)
        assert syncer.calls[1][0] == "incremental"


def test_schedule_has_jitter_around_cron_hours(syncer: FakeSyncer) -> None:
    with start(syncer, BASE.replace(cron_hours=1)) as running:
        wait_until(lambda: running.history)
        status = running.http.get("/status").json()
        next_full = status["syncs"]["next_full_sync_in_seconds"]
        assert 3600 * 0.9 - 5 <= next_full <= 3600 * 1.1


def test_schedule_runs_full_sync(syncer: FakeSyncer) -> None:
    with start(syncer, BASE.replace(cron_hours=0.0003)) as running:
        wait_until(lambda: ("full", "schedule") in syncer.kinds(), timeout=10)
        assert running.history[0]["trigger"] == "startup"


def test_failed_first_sync_is_retried(syncer: FakeSyncer) -> None:
    syncer.hold.set()
    timing = {"startup_retry_initial": 0.2, "startup_retry_max": 0.2}
    with start(syncer, BASE.replace(sync_timeout=1), **timing) as running:
        wait_until(lambda: running.history)
        assert running.http.get("/readyz").status_code == 503

        syncer.hold.clear()
        syncer.release.set()
        wait_until(lambda: running.http.get("/readyz").status_code == 200, timeout=5)
        assert syncer.kinds()[:2] == [("full", "startup"), ("full", "startup")]
