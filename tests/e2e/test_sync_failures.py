"""Failures that must stay contained: bad items, odd Secrets, PRUNE, the guard, timeouts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

from renderer.compare import ANNOTATION_STATUS

MESSAGE = "kubestash.io/sync-message"


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def test_failed_key_keeps_last_good_value(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "good", "test/app/B": "b"})
    syncer.full_sync(trigger="test")

    credstash_table.put("test/app/A", "needs context", context={"app": "other"})
    result = syncer.full_sync(trigger="test")

    secret = kubectl.secret("test", "app")
    assert result.result == "partial"
    assert result.exit_code == 1
    assert decoded(secret) == {"A": "good", "B": "b"}
    assert secret["metadata"]["annotations"][ANNOTATION_STATUS] == "Failed"
    assert "A: KMS decrypt failed" in secret["metadata"]["annotations"][MESSAGE]
    assert result.secrets[0].keys_failed["A"].startswith("KMS decrypt failed")


def test_failed_key_is_recorded_as_event(credstash_table, syncer, kubectl, cli_env):
    credstash_table.put_many({"test/app/A": "good", "test/app/B": "b"})
    syncer.full_sync(trigger="test")

    credstash_table.put("test/app/A", "n3w-value", context={"app": "other"})
    credstash_table.put("test/app/B", "b2")
    completed = subprocess.run(
        [sys.executable, "-m", "renderer", "sync"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 1, completed.stderr
    events = json.loads(kubectl.run("get", "events", "-n", "test", "-o", "json").stdout)
    warnings = [e for e in events["items"] if e["reason"] == "SyncFailed"]
    assert len(warnings) == 1
    assert warnings[0]["involvedObject"]["name"] == "app"
    assert warnings[0]["type"] == "Warning"
    assert "A: KMS decrypt failed" in warnings[0]["message"]
    assert "n3w-value" not in json.dumps(events)


def test_failed_key_after_restart_keeps_live_value(credstash_table, make_syncer, settings, kubectl):
    credstash_table.put_many({"test/app/A": "good", "test/app/B": "b"})
    make_syncer(settings).full_sync(trigger="test")

    credstash_table.put("test/app/A", "tampered later")
    credstash_table.tamper("test/app/A")
    result = make_syncer(settings).full_sync(trigger="test")

    assert result.result == "partial"
    assert decoded(kubectl.secret("test", "app")) == {"A": "good", "B": "b"}
    assert "HMAC mismatch" in result.secrets[0].keys_failed["A"]


def test_failed_new_key_is_left_out(credstash_table, syncer, kubectl):
    credstash_table.put("test/app/B", "b")
    credstash_table.put("test/app/A", "x", context={"app": "other"})

    result = syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "app")) == {"B": "b"}
    assert result.counts["decrypt_failed"] == 1


def test_missing_namespace_is_skipped_and_reported(credstash_table, syncer, kubectl):
    credstash_table.put("nowhere/app/KEY", "k")
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test")

    outcomes = {s.namespace: s for s in result.secrets}
    assert outcomes["nowhere"].status == "skipped"
    assert "namespace nowhere not found" in outcomes["nowhere"].error
    assert result.result == "success"
    assert kubectl.run("get", "namespace", "nowhere", check=False).returncode != 0


def test_non_opaque_secret_is_reported_and_skipped(credstash_table, syncer, kubectl):
    kubectl.create(
        "secret",
        "docker-registry",
        "registry",
        "-n",
        "test",
        "--docker-server=r.example",
        "--docker-username=u",
        "--docker-password=p",
    )
    before = kubectl.secret("test", "registry")
    credstash_table.put("test/registry/KEY", "k")
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test")

    after = kubectl.secret("test", "registry")
    outcome = next(s for s in result.secrets if s.name == "registry")
    assert outcome.status == "failed"
    assert "kubernetes.io/dockerconfigjson" in outcome.error
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert result.result == "partial"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_oversized_secret_fails_whole(credstash_table, syncer, kubectl):
    chunk = "x" * (280 * 1024)
    for number in range(4):
        credstash_table.put(f"test/big/PART_{number}", chunk)
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test")

    big = next(s for s in result.secrets if s.name == "big")
    assert big.status == "failed"
    assert "1 MiB" in big.error
    assert kubectl.secret("test", "big") is None
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_emptied_secret_stays_without_prune(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/keep/B": "b", "test/keep/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/A")
    result = syncer.full_sync(trigger="test")

    secret = kubectl.secret("test", "app")
    assert result.result == "success"
    assert secret is not None
    assert decoded(secret) == {}


def test_prune_deletes_emptied_secret(credstash_table, make_syncer, settings, kubectl):
    syncer = make_syncer(settings.replace(prune=True))
    credstash_table.put_many({"test/app/A": "a", "test/keep/B": "b", "test/keep/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/A")
    result = syncer.full_sync(trigger="test")

    assert kubectl.secret("test", "app") is None
    assert next(s for s in result.secrets if s.name == "app").action == "delete"


def test_prune_keeps_secret_with_manual_keys(credstash_table, make_syncer, settings, kubectl):
    syncer = make_syncer(settings.replace(prune=True))
    credstash_table.put_many({"test/app/A": "a", "test/keep/B": "b", "test/keep/C": "c"})
    syncer.full_sync(trigger="test")
    kubectl.run(
        "patch",
        "secret",
        "app",
        "-n",
        "test",
        "--type",
        "merge",
        "-p",
        '{"stringData": {"MANUAL": "m"}}',
    )

    credstash_table.delete("test/app/A")
    syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "app")) == {"MANUAL": "m"}


def test_prune_dry_run_deletes_nothing(credstash_table, make_syncer, settings, kubectl):
    syncer = make_syncer(settings.replace(prune=True))
    credstash_table.put_many({"test/app/A": "a", "test/keep/B": "b", "test/keep/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/A")
    result = syncer.full_sync(trigger="test", dry_run=True)

    assert kubectl.secret("test", "app") is not None
    assert {
        "namespace": "test",
        "name": "app",
        "action": "delete",
        "keys_added": [],
        "keys_changed": [],
        "keys_removed": ["A"],
    } in result.preview


def test_mass_deletion_is_blocked(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/B")
    credstash_table.delete("test/app/C")
    credstash_table.put("test/app/A", "a2")
    result = syncer.full_sync(trigger="test")

    assert result.result == "blocked"
    assert result.exit_code == 1
    assert "remove 2 of 3" in result.error
    assert decoded(kubectl.secret("test", "app")) == {"A": "a2", "B": "b", "C": "c"}


def test_mass_deletion_with_permission(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/B")
    credstash_table.delete("test/app/C")
    result = syncer.full_sync(trigger="test", allow_mass_delete=True)

    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_empty_scan_removes_nothing(credstash_table, make_syncer, settings, kubectl):
    credstash_table.put_many({"test/app/A": "a"})
    make_syncer(settings).full_sync(trigger="test")

    credstash_table.delete("test/app/A")
    result = make_syncer(settings.replace(max_delete_ratio=1.0)).full_sync(trigger="test")

    assert result.result == "blocked"
    assert "no credstash names" in result.error
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_failed_scan_removes_nothing(credstash_table, make_syncer, settings, kubectl):
    credstash_table.put_many({"test/app/A": "a"})
    make_syncer(settings).full_sync(trigger="test")

    result = make_syncer(settings.replace(ddb_table="missing-table")).full_sync(trigger="test")

    assert result.result == "failed"
    assert "missing-table" in result.error
    assert result.step == "scan"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}


def test_past_deadline_applies_nothing(credstash_table, syncer, kubectl):
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test", deadline=time.monotonic() - 1)

    assert result.result == "timeout"
    assert result.secrets[0].status == "not-applied"
    assert kubectl.secret("test", "app") is None
