"""Validation errors: Status objects worded like kube-apiserver's."""

from __future__ import annotations

import base64

import pytest
from kubeapi_support import apply, secrets_path


def _create(cluster, namespace: str, body: dict, **params):
    return cluster.http.post(secrets_path(namespace), json=body, params=params)


def test_invalid_name_lists_cause(cluster, namespace):
    answer = _create(cluster, namespace, {"metadata": {"name": "Bad_Name"}})

    assert answer.status_code == 422
    status = answer.json()
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == "Invalid"
    assert status["code"] == 422
    assert status["details"]["name"] == "Bad_Name"
    assert status["details"]["kind"] == "Secret"
    cause = status["details"]["causes"][0]
    assert cause["reason"] == "FieldValueInvalid"
    assert cause["field"] == "metadata.name"
    assert cause["message"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    assert status["message"].startswith(
        'Secret "Bad_Name" is invalid: metadata.name: Invalid value'
    )


def test_missing_name_is_required(cluster, namespace):
    answer = _create(cluster, namespace, {"metadata": {}})

    assert answer.status_code == 422
    cause = answer.json()["details"]["causes"][0]
    assert cause == {
        "reason": "FieldValueRequired",
        "message": "Required value: name or generateName is required",
        "field": "metadata.name",
    }


@pytest.mark.parametrize("key", ["a b", "a/b", "..", "ключ"])
def test_invalid_data_key_is_rejected(cluster, namespace, key):
    answer = _create(cluster, namespace, {"metadata": {"name": "k"}, "data": {key: "MQ=="}})

    assert answer.status_code == 422
    fields = [cause["field"] for cause in answer.json()["details"]["causes"]]
    assert f"data[{key}]" in fields


@pytest.mark.parametrize("key", ["A_B", "a.b", "-x", "x-1", ".env"])
def test_valid_data_key_is_accepted(cluster, namespace, key):
    answer = _create(cluster, namespace, {"metadata": {"name": "ok"}, "data": {key: "MQ=="}})

    assert answer.status_code == 201


def test_bad_base64_is_bad_request(cluster, namespace):
    answer = _create(
        cluster, namespace, {"metadata": {"name": "b64"}, "data": {"A": "not base64!"}}
    )

    assert answer.status_code == 400
    status = answer.json()
    assert status["reason"] == "BadRequest"
    assert "illegal base64 data at input byte" in status["message"]
    assert "not base64" not in status["message"]


def test_stringdata_overrides_data(cluster, namespace):
    body = {
        "metadata": {"name": "sd"},
        "data": {"A": "MQ==", "B": "Mg=="},
        "stringData": {"A": "new"},
    }
    answer = _create(cluster, namespace, body)

    assert answer.status_code == 201
    assert answer.json()["data"] == {"A": base64.b64encode(b"new").decode(), "B": "Mg=="}


def test_secret_over_one_mebibyte_is_rejected(cluster, namespace):
    big = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    answer = _create(cluster, namespace, {"metadata": {"name": "big"}, "data": {"A": big}})

    assert answer.status_code == 422
    cause = answer.json()["details"]["causes"][0]
    assert cause["field"] == "data"
    assert cause["reason"] == "FieldValueTooLong"


def test_secret_of_exactly_one_mebibyte_is_accepted(cluster, namespace):
    full = base64.b64encode(b"x" * (1024 * 1024)).decode()
    answer = _create(cluster, namespace, {"metadata": {"name": "full"}, "data": {"A": full}})

    assert answer.status_code == 201


def test_type_is_immutable(cluster, namespace):
    _create(cluster, namespace, {"metadata": {"name": "t"}, "type": "Opaque"})
    answer = apply(
        cluster, namespace, "t", {"type": "example.com/other"}, manager="kubestash", force=True
    )

    assert answer.status_code == 422
    cause = answer.json()["details"]["causes"][0]
    assert cause["field"] == "type"
    assert cause["message"] == 'Invalid value: "example.com/other": field is immutable'


def test_immutable_secret_rejects_data_change(cluster, namespace):
    _create(
        cluster,
        namespace,
        {"metadata": {"name": "frozen"}, "data": {"A": "MQ=="}, "immutable": True},
    )
    answer = cluster.http.patch(
        secrets_path(namespace, "frozen"),
        json={"data": {"A": "Mg=="}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert answer.status_code == 422
    cause = answer.json()["details"]["causes"][0]
    assert cause["field"] == "data"
    assert cause["reason"] == "FieldValueForbidden"
    assert cause["message"] == "Forbidden: field is immutable when `immutable` is set"


def test_immutable_secret_allows_label_change(cluster, namespace):
    _create(
        cluster,
        namespace,
        {"metadata": {"name": "frozen"}, "data": {"A": "MQ=="}, "immutable": True},
    )
    answer = cluster.http.patch(
        secrets_path(namespace, "frozen"),
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert answer.status_code == 200


def test_immutable_cannot_be_unset(cluster, namespace):
    _create(cluster, namespace, {"metadata": {"name": "frozen"}, "immutable": True})
    answer = cluster.http.patch(
        secrets_path(namespace, "frozen"),
        json={"immutable": False},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "immutable"


def test_tls_secret_requires_keys(cluster, namespace):
    body = {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {}}
    answer = _create(cluster, namespace, body)

    assert answer.status_code == 422
    fields = {cause["field"] for cause in answer.json()["details"]["causes"]}
    assert fields == {"data[tls.key]", "data[tls.crt]"}


def test_invalid_label_value_is_rejected(cluster, namespace):
    answer = _create(cluster, namespace, {"metadata": {"name": "l", "labels": {"a": "not valid!"}}})

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "metadata.labels"


def test_unknown_field_strict_is_bad_request(cluster, namespace):
    body = {"metadata": {"name": "u"}, "spec": {}}
    answer = _create(cluster, namespace, body, fieldValidation="Strict")

    assert answer.status_code == 400
    assert 'strict decoding error: unknown field "spec"' in answer.json()["message"]


def test_unknown_field_warn_answers_warning(cluster, namespace):
    body = {"metadata": {"name": "u", "extra": 1}}
    answer = _create(cluster, namespace, body, fieldValidation="Warn")

    assert answer.status_code == 201
    assert 'unknown field \\"metadata.extra\\"' in answer.headers["warning"]
    assert "extra" not in answer.json()["metadata"]


def test_unknown_field_ignore_drops_it(cluster, namespace):
    answer = _create(
        cluster, namespace, {"metadata": {"name": "u"}, "spec": {}}, fieldValidation="Ignore"
    )

    assert answer.status_code == 201
    assert "warning" not in answer.headers
    assert "spec" not in answer.json()


def test_invalid_field_validation_value(cluster, namespace):
    answer = _create(cluster, namespace, {"metadata": {"name": "u"}}, fieldValidation="Loose")

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "fieldValidation"


def test_invalid_dry_run_value(cluster, namespace):
    answer = _create(cluster, namespace, {"metadata": {"name": "u"}}, dryRun="Some")

    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "dryRun"


def test_unknown_content_type_is_unsupported(cluster, namespace):
    answer = cluster.http.post(
        secrets_path(namespace), content=b"name=x", headers={"Content-Type": "text/plain"}
    )

    assert answer.status_code == 415
    assert answer.json()["reason"] == "UnsupportedMediaType"


def test_unknown_patch_type_is_unsupported(cluster, namespace):
    _create(cluster, namespace, {"metadata": {"name": "p"}})
    answer = cluster.http.patch(
        secrets_path(namespace, "p"), content=b"{}", headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 415


def test_post_to_named_path_is_not_allowed(cluster, namespace):
    answer = cluster.http.post(secrets_path(namespace, "x"), json={"metadata": {"name": "x"}})

    assert answer.status_code == 405
    assert answer.json()["reason"] == "MethodNotAllowed"


def test_malformed_json_is_bad_request(cluster, namespace):
    answer = cluster.http.post(
        secrets_path(namespace), content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 400
    assert answer.json()["reason"] == "BadRequest"


def test_body_over_three_mebibytes_is_too_large(cluster, namespace):
    big = "x" * (3 * 1024 * 1024 + 10)
    answer = cluster.http.post(
        secrets_path(namespace), json={"metadata": {"name": "huge"}, "stringData": {"A": big}}
    )

    assert answer.status_code == 413
    assert answer.json()["reason"] == "RequestEntityTooLarge"
