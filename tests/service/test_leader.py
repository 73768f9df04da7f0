"""Two replicas with leader election on a Lease: exactly one syncs, and it hands over."""

from __future__ import annotations

from typing import Any

from renderer.leader import LeaseTiming

from .conftest import Stack
from .harness import RunningService, wait_until

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases/kubestash"


def replica(stack: Stack, name: str, **options: Any) -> RunningService:
    variables = {"LEADER_ELECTION": "true", "POD_NAME": name, "POD_NAMESPACE": "default"}
    return stack.service(variables=variables, **options)


def is_leader(running: RunningService) -> bool:
    return running.run(lambda: running.service.is_leader())


def leader_of(replicas: list[RunningService]) -> RunningService:
    return wait_until(lambda: next((r for r in replicas if is_leader(r)), None))


def holder(stack: Stack) -> str | None:
    return stack.kube.request("get", "GET", LEASE_PATH)["spec"].get("holderIdentity")


def test_only_leader_syncs(stack: Stack) -> None:
    stack.create_namespace("team")
    replicas = [replica(stack, "first"), replica(stack, "second")]
    leader = leader_of(replicas)
    standby = next(r for r in replicas if r is not leader)
    wait_until(lambda: leader.history)

    stack.table.put("team/app/KEY", "v1")
    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("KEY") == "v1")
    wait_until(lambda: len(leader.history) == 2)

    assert [entry["trigger"] for entry in leader.history] == ["startup", "stream"]
    assert standby.history == []
    assert not is_leader(standby)
    assert standby.http.get("/readyz").status_code == 200
    assert holder(stack) == leader.service.settings.pod_name


def test_killed_leader_hands_over(stack: Stack) -> None:
    stack.create_namespace("team")
    replicas = [replica(stack, "first"), replica(stack, "second")]
    leader = leader_of(replicas)
    standby = next(r for r in replicas if r is not leader)
    wait_until(lambda: leader.history)

    leader.kill()
    wait_until(lambda: is_leader(standby), timeout=10)
    wait_until(lambda: standby.history)
    stack.table.put("team/app/KEY", "after-handover")

    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("KEY") == "after-handover")
    assert holder(stack) == standby.service.settings.pod_name


def test_stopped_leader_releases_lease(stack: Stack) -> None:
    slow_expiry = LeaseTiming(lease_duration=60, renew_deadline=1.5, retry_period=0.2)
    replicas = [
        replica(stack, "first", lease_timing=slow_expiry),
        replica(stack, "second", lease_timing=slow_expiry),
    ]
    leader = leader_of(replicas)
    standby = next(r for r in replicas if r is not leader)

    leader.stop()

    wait_until(lambda: is_leader(standby), timeout=5)
    assert holder(stack) == standby.service.settings.pod_name
