"""Full syncs from a credstash table in moto_server to the Kubernetes API test server."""

from __future__ import annotations

import base64
import json

from renderer import metrics
from renderer.compare import ANNOTATION_CHECKSUM, ANNOTATION_STATUS, ANNOTATION_UPDATED_AT

MANAGED_BY = "app.kubernetes.io/managed-by"


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def kubestash_entries(secret: dict) -> list[dict]:
    return [
        entry
        for entry in secret["metadata"].get("managedFields", [])
        if entry["manager"] == "kubestash"
    ]


def write_count() -> float:
    total = 0.0
    for sample in metrics.kube_requests_total.collect()[0].samples:
        if sample.name.endswith("_total") and sample.labels["verb"] in (
            "patch",
            "delete",
            "create",
        ):
            total += sample.value
    return total


def test_key_becomes_secret(credstash_table, syncer, kubectl):
    credstash_table.put("test/mysecret/TEST_KEY", "$ecreT")

    result = syncer.full_sync(trigger="test")

    secret = kubectl.secret("test", "mysecret")
    assert result.result == "success"
    assert secret["type"] == "Opaque"
    assert secret["data"]["TEST_KEY"] == base64.b64encode(b"$ecreT").decode()
    assert secret["metadata"]["labels"][MANAGED_BY] == "kubestash"
    annotations = secret["metadata"]["annotations"]
    assert annotations[ANNOTATION_UPDATED_AT].endswith("Z")
    assert len(annotations[ANNOTATION_CHECKSUM]) == 64
    assert annotations[ANNOTATION_STATUS] == "Synced"
    entries = kubestash_entries(secret)
    assert len(entries) == 1
    assert entries[0]["operation"] == "Apply"
    assert "f:TEST_KEY" in entries[0]["fieldsV1"]["f:data"]


def test_second_version_wins(credstash_table, syncer, kubectl):
    credstash_table.put("test/mysecret/TEST_KEY", "first")
    syncer.full_sync(trigger="test")

    credstash_table.put("test/mysecret/TEST_KEY", "second")
    result = syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "mysecret")) == {"TEST_KEY": "second"}
    assert result.secrets[0].keys_changed == ["TEST_KEY"]


def test_deleted_name_removes_key(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/app/B")
    result = syncer.full_sync(trigger="test")

    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a", "C": "c"}
    assert result.secrets[0].keys_removed == ["B"]


def test_manual_key_survives_every_sync(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")
    patch = json.dumps({"data": {"MANUAL": base64.b64encode(b"by hand").decode()}})
    kubectl.run("patch", "secret", "app", "-n", "test", "--type", "merge", "-p", patch)

    syncer.full_sync(trigger="test")
    credstash_table.put("test/app/A", "a2")
    syncer.full_sync(trigger="test")
    credstash_table.delete("test/app/C")
    syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "app")) == {"A": "a2", "B": "b", "MANUAL": "by hand"}


def test_handmade_secret_without_table_keys_is_untouched(credstash_table, syncer, kubectl):
    kubectl.create("secret", "generic", "handmade", "-n", "test", "--from-literal=X=y")
    before = kubectl.secret("test", "handmade")
    credstash_table.put("test/app/A", "a")

    syncer.full_sync(trigger="test")
    syncer.full_sync(trigger="test")

    after = kubectl.secret("test", "handmade")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert MANAGED_BY not in (after["metadata"].get("labels") or {})
    assert kubestash_entries(after) == []


def test_handmade_secret_in_table_gets_table_keys(credstash_table, syncer, kubectl):
    kubectl.create("secret", "generic", "mysecret", "-n", "test", "--from-literal=OWN=mine")
    credstash_table.put("test/mysecret/TEST_KEY", "$ecreT")

    result = syncer.full_sync(trigger="test")

    secret = kubectl.secret("test", "mysecret")
    assert result.result == "success"
    assert decoded(secret) == {"OWN": "mine", "TEST_KEY": "$ecreT"}
    assert secret["metadata"]["labels"][MANAGED_BY] == "kubestash"


def test_handmade_secret_keeps_own_key(credstash_table, syncer, kubectl):
    kubectl.create("secret", "generic", "mysecret", "-n", "test", "--from-literal=OWN=mine")
    credstash_table.put_many({"test/mysecret/A": "a", "test/mysecret/B": "b"})
    syncer.full_sync(trigger="test")

    credstash_table.delete("test/mysecret/B")
    syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "mysecret")) == {"OWN": "mine", "A": "a"}


def test_excluded_namespace_is_never_written(credstash_table, syncer, kubectl, kubeapi):
    credstash_table.put("kube-system/x/KEY", "never")
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test")

    assert result.counts["excluded"] == 1
    assert [s.name for s in result.secrets] == ["app"]
    assert [r for r in kubeapi.requests if r.namespace == "kube-system"] == []
    assert kubectl.secret("kube-system", "x") is None


def test_invalid_names_are_reported_and_skipped(credstash_table, syncer, kubectl, caplog):
    credstash_table.put("test/Bad_Name/KEY", "never")
    credstash_table.put("test/app/KEY WITH SPACE", "never")
    credstash_table.put("test/app/A", "a")

    result = syncer.full_sync(trigger="test")

    assert result.counts["invalid"] == 2
    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("test/Bad_Name/KEY" in message for message in warnings)
    assert any("KEY WITH SPACE" in message for message in warnings)
    assert metrics.invalid_keys._value.get() == 2


def test_unchanged_resync_sends_no_write_and_no_kms(credstash_table, make_syncer, settings, aws):
    session = aws.session()
    kms_calls: list[str] = []
    session.events.register("before-call.kms.Decrypt", lambda **kwargs: kms_calls.append("x"))
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "prod/web/C": "c"})
    syncer = make_syncer(settings, session=session)
    syncer.full_sync(trigger="test")
    kms_before, writes_before = len(kms_calls), write_count()

    result = syncer.full_sync(trigger="test")

    assert kms_before == 3
    assert len(kms_calls) == kms_before
    assert write_count() == writes_before
    assert [s.action for s in result.secrets] == ["unchanged", "unchanged"]
    assert result.counts["cache_hits"] == 3


def test_unchanged_resync_sends_no_write_to_server(credstash_table, syncer, kubeapi):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b"})
    syncer.full_sync(trigger="test")
    seen = len(kubeapi.requests)

    syncer.full_sync(trigger="test")

    verbs = [request.verb for request in kubeapi.requests[seen:]]
    assert verbs
    assert set(verbs) <= {"list", "get"}


def test_dry_run_persists_nothing(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")
    before = kubectl.secret("test", "app")
    credstash_table.put("test/app/A", "a2")
    credstash_table.delete("test/app/C")
    credstash_table.put("test/app/D", "d")
    credstash_table.put("prod/new/E", "e")

    result = syncer.full_sync(trigger="test", dry_run=True)

    after = kubectl.secret("test", "app")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert decoded(after) == {"A": "a", "B": "b", "C": "c"}
    assert kubectl.secret("prod", "new") is None
    assert result.dry_run
    assert result.preview == [
        {
            "namespace": "prod",
            "name": "new",
            "action": "create",
            "keys_added": ["E"],
            "keys_changed": [],
            "keys_removed": [],
        },
        {
            "namespace": "test",
            "name": "app",
            "action": "update",
            "keys_added": ["D"],
            "keys_changed": ["A"],
            "keys_removed": ["C"],
        },
    ]
    assert syncer.last_preview == result.preview


def test_dry_run_default_comes_from_settings(credstash_table, make_syncer, settings, kubectl):
    credstash_table.put("test/app/A", "a")

    result = make_syncer(settings.replace(dry_run=True)).full_sync(trigger="test")

    assert result.dry_run
    assert kubectl.secret("test", "app") is None
    assert result.secrets[0].status == "dry-run"


def test_collision_winner_is_stable(credstash_table, syncer, kubectl):
    credstash_table.put_many({"test/s/x.y": "dot", "test/s/x&y": "amp", "test/s/x-y": "dash"})

    first = syncer.full_sync(trigger="test")
    second = syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "s")) == {"X_Y": "amp"}
    assert first.counts["collisions"] == 1
    assert second.secrets[0].action == "unchanged"


def test_secrets_in_several_namespaces(credstash_table, syncer, kubectl):
    credstash_table.put_many(
        {"test/one/A": "1", "test/two/B": "2", "prod/app.config/db.host": "h", "prod/x/K": "k"}
    )

    result = syncer.full_sync(trigger="test")

    assert result.counts["created"] == 4
    assert decoded(kubectl.secret("prod", "app.config")) == {"DB_HOST": "h"}
    assert decoded(kubectl.secret("test", "two")) == {"B": "2"}


def test_updated_at_moves_only_with_data(credstash_table, syncer, kubectl):
    credstash_table.put("test/app/A", "a")
    syncer.full_sync(trigger="test")
    first = kubectl.secret("test", "app")["metadata"]["annotations"]
    kubectl.run(
        "annotate", "secret", "app", "-n", "test", "--overwrite", f"{ANNOTATION_STATUS}=Broken"
    )

    syncer.full_sync(trigger="test")
    second = kubectl.secret("test", "app")["metadata"]["annotations"]

    assert second[ANNOTATION_STATUS] == "Synced"
    assert second[ANNOTATION_UPDATED_AT] == first[ANNOTATION_UPDATED_AT]
    assert second[ANNOTATION_CHECKSUM] == first[ANNOTATION_CHECKSUM]
