"""AWS faults: KMS errors and throttling, tampered items, a failing Scan, expiring credentials.

Each fault hits the real boto3 clients of a Syncer talking to moto_server (see awsfaults).
Afterwards the Secrets equal the table, or keep their last good values where a key could
not be read. The failure is in the log with its ids and in the metrics, and no value leaks.
"""

from __future__ import annotations

import logging

import pytest

from renderer.cli import record_events

from .awsfaults import (
    DENIED,
    EXPIRED,
    INTERNAL,
    SCAN_THROTTLED,
    THROTTLED,
    AwsFault,
    AwsFaults,
    ExpiringCredentials,
    data_key_of,
    for_ciphertexts,
    later_pages,
)
from .conftest import Rig
from .support import MESSAGE, STATUS, expected_secrets, sample

NAMES = [f"team/app/KEY_{number}" for number in range(4)] + ["other/db/PASSWORD"]


def table_of(values: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    return expected_secrets(values)


def failed_gauge(namespace: str, secret: str, key: str) -> float:
    return sample("kubestash_key_synced_failed_status", namespace=namespace, secret=secret, key=key)


def kms_calls() -> float:
    success = sample("kubestash_kms_decrypt_total", result="success")
    return success + sample("kubestash_kms_decrypt_total", result="error")


def test_kms_throttling_is_retried(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    syncer = rig.syncer()
    throttled = [data_key_of(rig.store, NAMES[0]), data_key_of(rig.store, NAMES[2])]
    faults = AwsFaults().attach(syncer.decryptor.key_service.kms)
    fault = faults.add(AwsFault("Decrypt", THROTTLED, times=4, match=for_ciphertexts(throttled)))

    result = syncer.full_sync(trigger="test")

    assert fault.hits == 4
    assert result.result == "success"
    assert rig.cluster.managed() == table_of(values)
    rig.assert_no_leak(result)


def test_kms_error_fails_only_its_keys(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    syncer = rig.syncer()
    assert syncer.full_sync(trigger="test").result == "success"
    errors_before = sample("kubestash_kms_decrypt_total", result="error")

    rig.put("team/app/KEY_0")
    rig.put("team/app/NEW_KEY")
    values["team/app/KEY_1"] = rig.put("team/app/KEY_1")
    denied = [data_key_of(rig.store, "team/app/KEY_0"), data_key_of(rig.store, "team/app/NEW_KEY")]
    faults = AwsFaults().attach(syncer.decryptor.key_service.kms)
    faults.add(AwsFault("Decrypt", DENIED, match=for_ciphertexts(denied)))
    result = syncer.full_sync(trigger="test")
    record_events(syncer.kube, syncer, result)

    assert result.result == "partial"
    assert rig.cluster.managed() == table_of(values)
    secret = rig.cluster.secret("team", "app")
    assert secret["metadata"]["annotations"][STATUS] == "Failed"
    assert "KEY_0: KMS decrypt failed" in secret["metadata"]["annotations"][MESSAGE]
    assert rig.logged(logging.WARNING, "KEY_0", "team/app", "KMS decrypt failed")
    assert rig.logged(logging.WARNING, "NEW_KEY", "team/app", "KMS decrypt failed")
    assert failed_gauge("team", "app", "KEY_0") == 1
    assert failed_gauge("team", "app", "NEW_KEY") == 1
    assert failed_gauge("team", "app", "KEY_1") == 0
    assert sample("kubestash_kms_decrypt_total", result="error") - errors_before >= 2
    warnings = [e for e in rig.cluster.events() if e["involvedObject"]["name"] == "app"]
    assert any(e["type"] == "Warning" and "KEY_0" in e["message"] for e in warnings)
    rig.assert_no_leak(result)

    faults.clear()
    recovered = syncer.full_sync(trigger="test")

    values.update({name: rig.store.get(name) for name in ("team/app/KEY_0", "team/app/NEW_KEY")})
    assert recovered.result == "success"
    assert rig.cluster.managed() == table_of(values)
    assert failed_gauge("team", "app", "KEY_0") == 0
    assert rig.cluster.secret("team", "app")["metadata"]["annotations"][STATUS] == "Synced"


def test_tampered_item_keeps_last_good_value(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")

    rig.put("team/app/KEY_3")
    rig.store.tamper("team/app/KEY_3")
    rig.put("team/app/FORGED")
    rig.store.tamper("team/app/FORGED")
    result = syncer.full_sync(trigger="test")

    assert result.result == "partial"
    assert rig.cluster.managed() == table_of(values)
    outcome = next(s for s in result.secrets if s.name == "app")
    assert "HMAC mismatch" in outcome.keys_failed["KEY_3"]
    assert "HMAC mismatch" in outcome.keys_failed["FORGED"]
    assert rig.logged(logging.WARNING, "'team/app/FORGED'", "HMAC mismatch")
    assert failed_gauge("team", "app", "FORGED") == 1
    rig.assert_no_leak(result)

    calls_before = kms_calls()
    syncer.full_sync(trigger="test")
    assert kms_calls() == calls_before

    values["team/app/KEY_3"] = rig.put("team/app/KEY_3")
    repaired = syncer.full_sync(trigger="test")

    assert rig.cluster.data("team", "app")["KEY_3"] == values["team/app/KEY_3"]
    assert "FORGED" not in rig.cluster.data("team", "app")
    assert repaired.result == "partial"


@pytest.mark.parametrize(("code", "status"), [(SCAN_THROTTLED, 400), (INTERNAL, 500), ("drop", 0)])
def test_scan_errors_are_retried(rig: Rig, code: str, status: int) -> None:
    values = rig.put_many(NAMES)
    syncer = rig.syncer(page_size=2)
    faults = AwsFaults().attach(syncer.table.client)
    fault = faults.add(AwsFault("Scan", code, status=status, times=2))

    result = syncer.full_sync(trigger="test")

    assert fault.hits == 2
    assert result.result == "success"
    assert rig.cluster.managed() == table_of(values)
    assert sample("kubestash_table_fetch_status") == 0
    rig.assert_no_leak(result)


def test_scan_failing_halfway_removes_nothing(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    settings = rig.settings(scan_segments=2, max_delete_ratio=1.0)
    syncer = rig.syncer(settings, page_size=1)
    syncer.full_sync(trigger="test")
    before = rig.cluster.snapshot()

    rig.store.delete("team/app/KEY_1")
    rig.put("team/app/KEY_2")
    faults = AwsFaults().attach(syncer.table.client)
    fault = faults.add(AwsFault("Scan", DENIED, match=later_pages))
    rig.kubeapi.clear_requests()
    result = syncer.full_sync(trigger="test")

    assert fault.hits >= 1
    assert result.result == "failed"
    assert result.step == "scan"
    assert rig.secret_requests() == []
    assert rig.cluster.snapshot() == before
    assert sample("kubestash_table_fetch_status") == 1
    assert rig.logged(logging.ERROR, f"sync {result.sync_id} failed in step scan")
    rig.assert_no_leak(result)

    faults.clear()
    recovered = syncer.full_sync(trigger="test")

    del values["team/app/KEY_1"]
    values["team/app/KEY_2"] = rig.store.get("team/app/KEY_2")
    assert recovered.result == "success"
    assert rig.cluster.managed() == table_of(values)
    assert sample("kubestash_table_fetch_status") == 0


def expire_after_scan(client: object, credentials: ExpiringCredentials) -> None:
    """The token runs out right after the Scan, before any KMS Decrypt of the sync."""

    def expire(**_: object) -> None:
        credentials.expire()

    client.meta.events.register("after-call.dynamodb.Scan", expire)


def test_credentials_refreshed_mid_sync(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    credentials = ExpiringCredentials(rig.store.region)
    syncer = rig.syncer(session=credentials.session)
    faults = AwsFaults().attach(syncer.table.client, syncer.decryptor.key_service.kms)
    stale = faults.add(AwsFault("Decrypt", EXPIRED, match=credentials.reject_stale))
    expire_after_scan(syncer.table.client, credentials)

    result = syncer.full_sync(trigger="test")

    assert credentials.refreshes >= 1
    assert stale.hits == 0
    assert result.result == "success"
    assert rig.cluster.managed() == table_of(values)
    rig.assert_no_leak(result)


def test_credentials_lost_mid_sync_keep_values(rig: Rig) -> None:
    values = rig.put_many(NAMES)
    credentials = ExpiringCredentials(rig.store.region)
    syncer = rig.syncer(session=credentials.session)
    syncer.full_sync(trigger="test")
    before = rig.cluster.snapshot()

    rig.put("team/app/KEY_0")
    rig.put("team/app/NEW_KEY")
    credentials.renewable = False
    expire_after_scan(syncer.table.client, credentials)
    result = syncer.full_sync(trigger="test")

    assert result.result == "partial"
    assert rig.cluster.managed() == table_of(values)
    assert rig.cluster.data("team", "app") == before[("team", "app")][1]
    assert rig.logged(logging.WARNING, "'team/app/KEY_0'", "KMS request failed")
    assert failed_gauge("team", "app", "KEY_0") == 1
    rig.assert_no_leak(result)

    credentials.renewable = True
    recovered = syncer.full_sync(trigger="test")

    values.update({name: rig.store.get(name) for name in ("team/app/KEY_0", "team/app/NEW_KEY")})
    assert recovered.result == "success"
    assert rig.cluster.managed() == table_of(values)
