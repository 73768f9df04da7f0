"""Planning one Secret: what kubestash owns, what changes, PRUNE and the guard."""

from __future__ import annotations

import base64
from typing import Any

from renderer.compare import (
    ANNOTATION_CHECKSUM,
    ANNOTATION_STATUS,
    ANNOTATION_UPDATED_AT,
    LiveSecret,
    build_body,
    check_guard,
    plan_secret,
)
from renderer.desired import DesiredSecret, checksum
from renderer.names import SecretRef

REF = SecretRef("test", "app")
NOW = "2030-01-01T00:00:00Z"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def desired(**values: str) -> DesiredSecret:
    secret = DesiredSecret(REF)
    for key, value in values.items():
        secret.data[key] = b64(value)
        secret.sources[key] = f"test/app/{key}"
    return secret


def fields(keys: list[str], annotations: list[str] = (), labels: list[str] = ()) -> dict:
    result: dict[str, Any] = {"f:data": {f"f:{key}": {} for key in keys}}
    metadata = {}
    if annotations:
        metadata["f:annotations"] = {f"f:{name}": {} for name in annotations}
    if labels:
        metadata["f:labels"] = {f"f:{name}": {} for name in labels}
    if metadata:
        result["f:metadata"] = metadata
    return result


def live_from(
    body: dict, *, extra: dict[str, str] | None = None, type_: str = "Opaque"
) -> LiveSecret:
    """A live Secret as the API server returns it after kubestash applied `body`."""
    data = dict(body.get("data", {}))
    managed = [
        {
            "manager": "kubestash",
            "operation": "Apply",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields(
                list(data),
                list(body["metadata"]["annotations"]),
                list(body["metadata"]["labels"]),
            ),
        }
    ]
    if extra:
        data.update(extra)
        managed.append(
            {
                "manager": "kubectl-edit",
                "operation": "Update",
                "fieldsType": "FieldsV1",
                "fieldsV1": fields(list(extra)),
            }
        )
    obj = {
        "metadata": {
            "name": REF.name,
            "namespace": REF.namespace,
            "resourceVersion": "7",
            "uid": "u-1",
            "labels": dict(body["metadata"]["labels"]),
            "annotations": dict(body["metadata"]["annotations"]),
            "managedFields": managed,
        },
        "type": type_,
        "data": data,
    }
    return LiveSecret.from_object(obj)


def applied(secret: DesiredSecret, **extra: str) -> LiveSecret:
    plan = plan_secret(REF, secret, None, prune=False, now=NOW)
    return live_from(plan.body, extra={k: b64(v) for k, v in extra.items()})


def test_new_secret_is_created_with_every_key():
    plan = plan_secret(REF, desired(A="a", B="b"), None, prune=False, now=NOW)

    assert plan.action == "create"
    assert plan.keys_added == ["A", "B"]
    assert plan.body["type"] == "Opaque"
    assert plan.body["data"] == {"A": b64("a"), "B": b64("b")}
    assert plan.body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubestash"}
    assert plan.body["metadata"]["annotations"][ANNOTATION_STATUS] == "Synced"
    assert plan.body["metadata"]["annotations"][ANNOTATION_UPDATED_AT] == NOW


def test_secret_in_step_is_unchanged():
    secret = desired(A="a", B="b")

    plan = plan_secret(REF, secret, applied(secret), prune=False, now="2031-01-01T00:00:00Z")

    assert plan.action == "unchanged"
    assert plan.body is None


def test_manual_key_does_not_cause_a_write():
    secret = desired(A="a")

    plan = plan_secret(REF, secret, applied(secret, MANUAL="m"), prune=False)

    assert plan.action == "unchanged"


def test_changed_value_is_an_update():
    live = applied(desired(A="a", B="b"))

    plan = plan_secret(REF, desired(A="a2", B="b"), live, prune=False, now="2031-01-01T00:00:00Z")

    assert plan.action == "update"
    assert plan.keys_changed == ["A"]
    assert plan.keys_added == []
    assert plan.body["metadata"]["annotations"][ANNOTATION_UPDATED_AT] == "2031-01-01T00:00:00Z"


def test_removed_key_leaves_the_body():
    live = applied(desired(A="a", B="b"), MANUAL="m")

    plan = plan_secret(REF, desired(A="a"), live, prune=False)

    assert plan.action == "update"
    assert plan.keys_removed == ["B"]
    assert set(plan.body["data"]) == {"A"}


def test_updated_at_stays_when_checksum_is_unchanged():
    secret = desired(A="a")
    live = applied(secret)
    live.annotations[ANNOTATION_STATUS] = "Failed"

    plan = plan_secret(REF, secret, live, prune=False, now="2031-01-01T00:00:00Z")

    assert plan.action == "update"
    assert plan.body["metadata"]["annotations"][ANNOTATION_UPDATED_AT] == NOW


def test_annotation_taken_by_another_manager_is_reapplied():
    secret = desired(A="a")
    live = applied(secret)
    live.owned_annotations.discard(ANNOTATION_CHECKSUM)

    plan = plan_secret(REF, secret, live, prune=False)

    assert plan.action == "update"


def test_key_owned_by_another_manager_is_taken_over():
    live = applied(desired(B="b"), A="a")

    plan = plan_secret(REF, desired(A="a", B="b"), live, prune=False)

    assert plan.action == "update"
    assert plan.keys_added == ["A"]
    assert plan.keys_changed == []


def test_failed_key_keeps_live_value():
    secret = desired(A="a")
    live = applied(desired(A="a", B="b"))
    secret.sources["B"] = "test/app/B"
    secret.failed["B"] = "HMAC mismatch"

    plan = plan_secret(REF, secret, live, prune=False)

    assert plan.body["data"]["B"] == b64("b")
    assert plan.keys_removed == []
    assert plan.body["metadata"]["annotations"][ANNOTATION_STATUS] == "Failed"
    assert "B: HMAC mismatch" in plan.body["metadata"]["annotations"]["kubestash.io/sync-message"]


def test_failed_key_without_any_value_is_reported():
    secret = desired(A="a")
    secret.sources["B"] = "test/app/B"
    secret.failed["B"] = "KMS decrypt failed: denied"

    plan = plan_secret(REF, secret, None, prune=False)

    assert set(plan.body["data"]) == {"A"}
    assert plan.keys_failed == {"B": "KMS decrypt failed: denied"}


def test_non_opaque_secret_is_skipped():
    body = build_body(REF, {"A": b64("a")}, None, failed=False, message="")
    live = live_from(body, type_="kubernetes.io/tls")

    plan = plan_secret(REF, desired(A="a"), live, prune=False)

    assert plan.action == "skip"
    assert "kubernetes.io/tls" in plan.error
    assert plan.keys_failed == {"A": "the Secret is not Opaque"}


def test_oversized_secret_is_skipped_whole():
    plan = plan_secret(REF, desired(A="x" * (1024 * 1024)), None, prune=False)

    assert plan.action == "skip"
    assert "1 MiB" in plan.error
    assert set(plan.keys_failed) == {"A"}


def test_emptied_secret_without_prune_keeps_object():
    live = applied(desired(A="a"))

    plan = plan_secret(REF, None, live, prune=False)

    assert plan.action == "update"
    assert plan.keys_removed == ["A"]
    assert "data" not in plan.body
    assert plan.body["metadata"]["annotations"][ANNOTATION_CHECKSUM] == checksum({})


def test_emptied_secret_with_prune_is_deleted():
    live = applied(desired(A="a"))

    plan = plan_secret(REF, None, live, prune=True)

    assert plan.action == "delete"
    assert plan.keys_removed == ["A"]


def test_prune_keeps_secret_with_manual_keys():
    live = applied(desired(A="a"), MANUAL="m")

    plan = plan_secret(REF, None, live, prune=True)

    assert plan.action == "update"
    assert "data" not in plan.body


def test_emptied_secret_stays_quiet_afterwards():
    live = applied(DesiredSecret(REF))

    plan = plan_secret(REF, None, live, prune=False)

    assert plan.action == "unchanged"


def test_keep_removed_retains_live_values():
    live = applied(desired(A="a", B="b"))

    plan = plan_secret(REF, desired(A="a"), live, prune=False, keep_removed=True)

    assert plan.action == "unchanged"
    assert plan.keys_removed == []


def test_guard_blocks_removing_most_keys():
    live = applied(desired(A="a", B="b", C="c"))
    plans = [plan_secret(REF, desired(A="a"), live, prune=False)]

    decision = check_guard(plans, managed_keys=3, scanned_names=1, max_ratio=0.5, allow=False)

    assert decision.blocked
    assert "remove 2 of 3" in decision.reason
    assert "allow_mass_delete" in decision.reason


def test_guard_allows_removing_up_to_ratio():
    live = applied(desired(A="a", B="b"))
    plans = [plan_secret(REF, desired(A="a"), live, prune=False)]

    decision = check_guard(plans, managed_keys=2, scanned_names=1, max_ratio=0.5, allow=False)

    assert not decision.blocked


def test_guard_blocks_empty_scan():
    live = applied(desired(A="a"))
    plans = [plan_secret(REF, None, live, prune=False)]

    decision = check_guard(plans, managed_keys=100, scanned_names=0, max_ratio=1.0, allow=False)

    assert decision.blocked
    assert "no credstash names" in decision.reason


def test_guard_can_be_overridden():
    live = applied(desired(A="a"))
    plans = [plan_secret(REF, None, live, prune=False)]

    decision = check_guard(plans, managed_keys=1, scanned_names=0, max_ratio=0.5, allow=True)

    assert not decision.blocked
