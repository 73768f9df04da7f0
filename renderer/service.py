"""Service mode: the stream readers, the scheduler, leader election and the HTTP API in one
asyncio process.

Start-up order matters: the HTTP port opens first (so /healthz answers), then the stream
readers take LATEST positions, and only then does the start-up full sync begin, so that
nothing written between the scan and the stream is lost. With leader election, readers and
syncs run only while this replica holds the Lease.

Shutdown on SIGTERM or SIGINT: stop the readers, abandon the sync in flight (the Secret being
applied finishes, no further one starts), close the HTTP port, release the Lease, all within
`shutdown_timeout` seconds so the kubelet's 30-second grace period is never reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

from renderer import metrics
from renderer.app import create_app
from renderer.drift import DriftMonitor
from renderer.events import EventRecorder
from renderer.leader import LeaderElector, LeaseTiming, identity, lease_namespace
from renderer.scheduler import Scheduler, ScheduleTiming
from renderer.settings import SettingError, Settings, add_flags, flags_from_args
from renderer.stream import StreamReaders, StreamTiming, discover_stream_arn

logger = logging.getLogger(__name__)

AWS_CONFIG = Config(
    connect_timeout=5,
    read_timeout=20,
    retries={"mode": "standard", "max_attempts": 4},
)


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handlers: the service must release the Lease first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}; set PORT") from None
    sock.listen(128)
    return sock


class Service:
    """One kubestash service process; `start()` and `stop()` make it usable in tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "0.0.0.0",
        syncer: Any = None,
        kube: Any = None,
        session: boto3.Session | None = None,
        streams: Any = None,
        lease_timing: LeaseTiming | None = None,
        stream_timing: StreamTiming | None = None,
        schedule_timing: ScheduleTiming | None = None,
        shutdown_timeout: float = 8.0,
    ):
        self.settings = settings
        self.host = host
        self.port: int | None = None
        self.syncer = syncer
        self.kube = kube
        self._session = session
        self._streams = streams
        self._lease_timing = lease_timing
        self._stream_timing = stream_timing
        self._shutdown_timeout = shutdown_timeout
        self.scheduler: Scheduler | None = None
        self._schedule_timing = schedule_timing
        self.readers: StreamReaders | None = None
        self.elector: LeaderElector | None = None
        self.events: EventRecorder | None = None
        self.drift: DriftMonitor | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubestash-io")
        self._role_lock = asyncio.Lock()
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._was_ready = False
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Open the HTTP port, then start leading (or campaign for the Lease)."""
        settings = self.settings
        metrics.settings_info.info({k.lower(): str(v) for k, v in settings.redacted().items()})
        self._build()
        await self._serve_http()
        logger.info(
            "kubestash serving on %s (dry run %s, leader election %s)",
            self.url,
            settings.dry_run,
            settings.leader_election,
        )
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run(), name="leader-election"))
        else:
            metrics.leader.set(1)
            await self._start_leading()

    def _build(self) -> None:
        if self.syncer is None:
            from renderer.kube import KubeClient
            from renderer.sync import Syncer

            self.kube = self.kube or KubeClient(self.settings)
            self.syncer = Syncer(self.settings, kube=self.kube, session=self._session)
        if self.kube is None:
            self.kube = getattr(self.syncer, "kube", None)

        self.scheduler = Scheduler(self.syncer, self.settings, self._schedule_timing)
        if self.kube is not None and getattr(self.kube, "api_client", None) is not None:
            self._build_drift()
        if self.settings.stream_enabled:
            self.readers = self._build_readers()
        if self.settings.leader_election:
            self.elector = LeaderElector(
                self.kube,
                name=self.settings.lease_name,
                namespace=lease_namespace(self.settings),
                identity=identity(self.settings),
                on_change=self._on_leadership,
                pool=self._pool,
                timing=self._lease_timing,
            )

    def _build_drift(self) -> None:
        """Build the Event recorder and the drift monitor, fed by every sync result."""
        assert self.scheduler is not None
        scheduler = self.scheduler
        loop = asyncio.get_running_loop()
        settings = self.settings
        self.events = EventRecorder(
            self.kube.api_client,
            dry_run=settings.dry_run,
            instance=identity(settings),
            request_timeout=settings.http_timeout,
        )
        self.drift = DriftMonitor(
            self.kube.api_client,
            desired=lambda: self.syncer.desired,
            dry_run=settings.dry_run,
            heal=lambda refs: loop.call_soon_threadsafe(scheduler.repair, refs),
            events=self.events,
            request_timeout=settings.http_timeout,
        )
        scheduler.listeners.append(self._after_sync)

    def _after_sync(self, job: Any, summary: dict[str, Any]) -> None:
        if self.drift is not None:
            self.drift.on_sync(summary)
        if self.events is None:
            return
        self.events.record_sync(summary)
        index = getattr(self.syncer, "index", None)
        if job.kind == "full" and index is not None:
            self.events.record_invalid_names(index.invalid())

    def _build_readers(self) -> StreamReaders:
        session = self._session or boto3.Session()
        region = self.settings.table_region
        streams = self._streams or session.client(
            "dynamodbstreams", region_name=region, config=AWS_CONFIG
        )

        def resolve_arn() -> str:
            if self.settings.stream_arn:
                return self.settings.stream_arn
            dynamodb = session.client("dynamodb", region_name=region, config=AWS_CONFIG)
            return discover_stream_arn(dynamodb, self.settings.ddb_table)

        assert self.scheduler is not None
        scheduler = self.scheduler
        return StreamReaders(
            streams,
            resolve_arn=resolve_arn,
            apply_record=self.syncer.apply_stream_record,
            on_refs=scheduler.add_refs,
            on_lost_position=lambda reason: self._request_recovery(reason),
            pool=self._pool,
            timing=self._stream_timing,
        )

    def _request_recovery(self, reason: str) -> None:
        assert self.scheduler is not None
        if not self.scheduler.active:
            return
        logger.warning("full sync requested by the stream reader: %s", reason)
        self.scheduler.request_full("stream")

    async def _serve_http(self) -> None:
        sock = bind_socket(self.host, self.settings.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self),
            log_config=None,
            access_log=False,
            lifespan="off",
            # X-Forwarded-For from any local client would pick the address that the
            # failed-key rate limit counts by; kubestash is reached directly, not via a proxy.
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[sock]), name="http"))
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def _on_leadership(self, leading: bool) -> None:
        if leading and self._stopping:
            return
        if leading:
            await self._start_leading()
        else:
            await self._stop_leading(timeout=self._lease_timing_or_default().renew_deadline / 2)

    def _lease_timing_or_default(self) -> LeaseTiming:
        return self._lease_timing or LeaseTiming()

    async def _start_leading(self) -> None:
        async with self._role_lock:
            assert self.scheduler is not None
            if self.events is not None:
                self.events.start()
            if self.drift is not None:
                self.drift.start()
            if self.readers is not None:
                await self.readers.start()
            self.scheduler.start()

    async def _stop_leading(self, *, timeout: float) -> bool:
        async with self._role_lock:
            if self.readers is not None:
                await self.readers.stop()
            finished = True
            if self.scheduler is not None:
                finished = await self.scheduler.stop(timeout=timeout)
            if self.drift is not None:
                await asyncio.to_thread(self.drift.stop)
            if self.events is not None:
                await asyncio.to_thread(self.events.stop)
            return finished

    async def stop(self) -> bool:
        """Stop readers, syncs and HTTP, release the Lease; bounded by shutdown_timeout.

        Returns False when an abandoned sync thread is still blocked in a request.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._shutdown_timeout
        self._stopping = True
        election = [task for task in self._tasks if task.get_name() == "leader-election"]
        for task in election:
            task.cancel()
        await asyncio.wait(election, timeout=1) if election else None

        finished = False
        try:
            async with asyncio.timeout_at(deadline - 2):
                finished = await self._stop_leading(timeout=max(0.5, deadline - loop.time() - 3))
            if not finished:
                logger.error("stopping with an abandoned sync thread still running")
        except TimeoutError:
            logger.error("readers and syncs did not stop in time; stopping anyway")

        if self._server is not None:
            self._server.should_exit = True
        serving = [task for task in self._tasks if not task.done()]
        if serving:
            _, pending = await asyncio.wait(serving, timeout=max(0.5, deadline - loop.time() - 1))
            for task in pending:
                task.cancel()

        if self.elector is not None:
            try:
                async with asyncio.timeout_at(deadline):
                    await self.elector.release()
            except TimeoutError:
                logger.error("could not release Lease %s in time", self.settings.lease_name)
        metrics.leader.set(0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        logger.info("kubestash stopped")
        return finished

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def leader_status(self) -> dict[str, Any]:
        if self.elector is None:
            return {"enabled": False, "is_leader": True}
        return self.elector.status()

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        stuck = self.scheduler.stuck if self.scheduler else None
        if stuck is None:
            return True, {}
        detail = {
            "reason": "an abandoned sync did not stop; restart the container",
            "sync_id": stuck.sync_id,
            "step": stuck.step,
        }
        return False, detail

    def ready(self) -> tuple[bool, str]:
        if self._was_ready:
            return True, "ready"
        if self.elector is not None and not self.elector.is_leader:
            if self.elector.joined:
                self._was_ready = True
                return True, f"standby; the leader is {self.elector.holder}"
            return False, "joining the leader election"
        if self.scheduler is not None and self.scheduler.ready:
            self._was_ready = True
            return True, "ready"
        return False, "waiting for the first successful full sync"

    def desired(self) -> dict[Any, Any]:
        return getattr(self.syncer, "desired", None) or {}

    def status(self) -> dict[str, Any]:
        healthy, _ = self.healthy()
        return {
            "env": self.settings.env,
            "cluster_name": self.settings.cluster_name,
            "dry_run": self.settings.dry_run,
            "ready": self.ready()[0],
            "healthy": healthy,
            "leader": self.leader_status(),
            "syncs": self.scheduler.status() if self.scheduler else None,
            "stream": self.readers.status() if self.readers else {"enabled": False},
            "drift": self.drift.snapshot() if self.drift else None,
        }


async def serve(settings: Settings, *, host: str = "0.0.0.0") -> tuple[int, bool]:
    """Run the service until SIGTERM or SIGINT; a second signal exits at once.

    Returns the exit code and whether every sync thread has finished.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(number: int) -> None:
        if stopping.is_set():
            logger.error("second %s; exiting at once", signal.Signals(number).name)
            os._exit(1)
        logger.info("received %s; shutting down", signal.Signals(number).name)
        stopping.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)

    service = Service(settings, host=host)
    try:
        await service.start()
    except Exception as error:
        logger.error("kubestash could not start: %s", error, exc_info=True)
        return 1, await service.stop()
    await stopping.wait()
    return 0, await service.stop()


def run(settings: Settings, *, host: str = "0.0.0.0") -> int:
    """Run service mode with these settings; return the process exit code.

    An abandoned sync can leave a thread blocked in a Kubernetes request for up to
    HTTP_TIMEOUT times the retries, and the interpreter joins such threads at exit. The
    process then exits at once instead, after the Lease was released and the port closed.
    """
    code, finished = asyncio.run(serve(settings, host=host))
    if not finished:
        logger.error("exiting without waiting for the abandoned sync's threads")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m renderer.service")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    add_flags(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(os.environ, flags_from_args(args))
    except SettingError as error:
        print(f"kubestash: {error}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    return run(settings, host=args.host)


def _setup_logging(settings: Settings) -> None:
    try:
        from renderer.logs import setup_logging
    except ImportError:
        logging.basicConfig(level=logging.DEBUG if settings.verbose else logging.INFO)
        return
    setup_logging(settings)


if __name__ == "__main__":
    sys.exit(main())
