"""Run a Service on its own event loop thread, so tests read as plain blocking code."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from renderer.service import Service


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll until `predicate()` is truthy and return its value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} seconds: {predicate}")
        time.sleep(interval)


class RunningService:
    """A started Service and an HTTP client for it; stop() or the with-block ends both."""

    def __init__(self, service: Service):
        self.service = service
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.http: httpx.Client | None = None

    def __enter__(self) -> RunningService:
        self._thread.start()
        self.call(self.service.start)
        self.http = httpx.Client(base_url=self.service.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, function: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(function(), self.loop).result(timeout)

    def run(self, function: Callable[[], Any]) -> Any:
        """Run a plain function on the service's loop, where its state may be touched."""

        async def wrapper() -> Any:
            return function()

        return self.call(wrapper)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self._thread.is_alive():
            self.call(self.service.stop)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)

    def kill(self) -> None:
        """Freeze the service as if its process died: no cleanup, no Lease release."""
        if self.http is not None:
            self.http.close()
            self.http = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.run(lambda: list(self.service.scheduler.history))
