"""Leader election on a coordination.k8s.io/v1 Lease, so that one replica of several syncs.

The rules are those of client-go's leaderelection package. A candidate takes the Lease when
nobody holds it, or when the holder's record has not changed for `leaseDurationSeconds`
measured on the candidate's own clock, so clock skew between nodes does not matter.
Every write carries the resourceVersion that was read, so two candidates can never both
win: the second write gets 409 Conflict. The leader renews every retry period and steps
down when it has not renewed within the renew deadline, which is shorter than the lease
duration, so it stops before a standby may take over. On shutdown the leader clears
holderIdentity, and a standby takes over on its next try instead of after a full lease.

The kubernetes package ships a leader elector only for ConfigMap locks with blocking
callbacks, so this one is written for Leases and asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from renderer import metrics
from renderer.kube import KubeError
from renderer.settings import Settings

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


@dataclass(frozen=True)
class LeaseTiming:
    """Seconds, as in client-go: lease duration > renew deadline > retry period."""

    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def lease_namespace(settings: Settings, *, namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """Return POD_NAMESPACE, else the pod's service account namespace, else "default"."""
    if settings.lease_namespace:
        return settings.lease_namespace
    try:
        return namespace_file.read_text().strip() or "default"
    except OSError:
        return "default"


def identity(settings: Settings) -> str:
    return settings.pod_name or socket.gethostname()


def _now() -> str:
    # MicroTime: RFC 3339 with microseconds, as the API server writes it.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for one Lease and calls `on_change(True/False)` when leadership changes."""

    def __init__(
        self,
        kube: Any,
        *,
        name: str,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], Awaitable[None]],
        pool: Executor,
        timing: LeaseTiming | None = None,
    ):
        self._kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self._on_change = on_change
        self._pool = pool
        self.timing = timing or LeaseTiming()
        self.is_leader = False
        self.joined = False
        self.holder: str | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._lock = asyncio.Lock()

    @property
    def path(self) -> str:
        return LEASES.format(namespace=self.namespace) + "/" + self.name

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "lease": f"{self.namespace}/{self.name}",
            "identity": self.identity,
            "is_leader": self.is_leader,
            "holder": self.holder,
            "joined": self.joined,
        }

    async def run(self) -> None:
        """Campaign and renew until cancelled."""
        metrics.leader.set(0)
        logger.info(
            "joining the election on Lease %s/%s as %s", self.namespace, self.name, self.identity
        )
        while True:
            await self._round()
            await asyncio.sleep(self.timing.retry_period)

    async def release(self) -> None:
        """Step down and clear holderIdentity so that a standby takes over at once."""
        was_leader = self.is_leader
        await self._set_leader(False)
        if not was_leader:
            return
        loop = asyncio.get_running_loop()
        try:
            released = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._release), timeout=self.timing.retry_period
            )
        except (TimeoutError, KubeError) as error:
            logger.warning("could not release Lease %s/%s: %s", self.namespace, self.name, error)
            return
        if released:
            logger.info("released Lease %s/%s", self.namespace, self.name)

    async def _round(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            acquired = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._try_acquire_or_renew),
                timeout=self.timing.renew_deadline,
            )
        except Exception as error:
            logger.warning(
                "Lease %s/%s: acquire or renew failed: %s",
                self.namespace,
                self.name,
                error or type(error).__name__,
                exc_info=not isinstance(error, TimeoutError | KubeError),
            )
            acquired = False

        now = time.monotonic()
        if acquired:
            self._last_renew = now
            await self._set_leader(True)
        elif self.is_leader and now - self._last_renew > self.timing.renew_deadline:
            logger.warning(
                "Lease %s/%s not renewed within %.1f seconds; stepping down",
                self.namespace,
                self.name,
                self.timing.renew_deadline,
            )
            await self._set_leader(False)
        elif self.is_leader and not acquired and self.holder != self.identity:
            logger.warning("Lease %s/%s taken by %s", self.namespace, self.name, self.holder)
            await self._set_leader(False)

    async def _set_leader(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        metrics.leader.set(1 if leading else 0)
        if leading:
            logger.info("became the leader on Lease %s/%s", self.namespace, self.name)
        else:
            logger.info("stopped leading on Lease %s/%s", self.namespace, self.name)
        async with self._lock:
            await self._on_change(leading)

    def _try_acquire_or_renew(self) -> bool:
        """Take or renew the Lease; return whether this candidate holds it now (blocking)."""
        try:
            lease = self._kube.request("get", "GET", self.path)
        except KubeError as error:
            if error.status != 404:
                raise
            return self._create()
        self.joined = True

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        self.holder = holder
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()
        duration = spec.get("leaseDurationSeconds") or self.timing.lease_duration
        held_by_other = holder is not None and holder != self.identity
        if held_by_other and time.monotonic() < self._observed_at + duration:
            return False

        now = _now()
        transitions = spec.get("leaseTransitions") or 0
        lease["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.timing.lease_duration,
            "renewTime": now,
            "acquireTime": spec.get("acquireTime") if holder == self.identity else now,
            "leaseTransitions": transitions if holder == self.identity else transitions + 1,
        }
        return self._write(partial(self._kube.request, "update", "PUT", self.path, body=lease))

    def _create(self) -> bool:
        now = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.timing.lease_duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        path = LEASES.format(namespace=self.namespace)
        return self._write(partial(self._kube.request, "create", "POST", path, body=body))

    def _write(self, send: Callable[[], dict[str, Any]]) -> bool:
        try:
            written = send()
        except KubeError as error:
            if error.status == 409:
                # Another candidate wrote first (resourceVersion conflict, or it created
                # the Lease); read it again on the next try.
                logger.debug("Lease %s/%s: lost a write race", self.namespace, self.name)
                return False
            raise
        self.joined = True
        spec = written.get("spec") or {}
        self.holder = spec.get("holderIdentity")
        self._observed = (self.holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        self._observed_at = time.monotonic()
        return self.holder == self.identity

    def _release(self) -> bool:
        lease = self._kube.request("get", "GET", self.path)
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        lease["spec"] = {
            **spec,
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
            "renewTime": _now(),
        }
        try:
            self._kube.request("update", "PUT", self.path, body=lease)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True
