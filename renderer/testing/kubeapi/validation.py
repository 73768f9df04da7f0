"""Validation of names, metadata, Secrets, Leases and Events, worded like the real server.

Messages follow apimachinery's validation helpers (`IsDNS1123Subdomain`,
`IsQualifiedName`, `IsConfigMapKey`, ...) and the core validation of each kind, so a
client that matches on a message or a `details.causes[].field` gets the same text.
"""

from __future__ import annotations

import json
import re
from base64 import b64decode
from typing import Any

from .errors import FieldError

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = r"(" + QUALIFIED_NAME + r")?"
CONFIG_KEY = r"[-._a-zA-Z0-9]+"

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "
    f"'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{DNS1123_LABEL}')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    f"regex used for validation is '{QUALIFIED_NAME}')"
)
QUALIFIED_NAME_SHAPE = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
    f"'123-abc', regex used for validation is '{QUALIFIED_NAME}') with an optional DNS "
    "subdomain prefix and '/' (e.g. 'example.com/MyName')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{LABEL_VALUE}')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    f"'{CONFIG_KEY}')"
)

MAX_SECRET_SIZE = 1024 * 1024
MAX_ANNOTATIONS_SIZE = 256 * 1024
IMMUTABLE_SET = "field is immutable when `immutable` is set"


def _full(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def dns1123_subdomain(name: str) -> list[str]:
    problems = []
    if len(name) > 253:
        problems.append("must be no more than 253 characters")
    if not _full(DNS1123_SUBDOMAIN, name):
        problems.append(SUBDOMAIN_MESSAGE)
    return problems


def dns1123_label(name: str) -> list[str]:
    problems = []
    if len(name) > 63:
        problems.append("must be no more than 63 characters")
    if not _full(DNS1123_LABEL, name):
        problems.append(LABEL_MESSAGE)
    return problems


def path_segment_name(name: str) -> list[str]:
    """Check a name that only has to be usable in a URL path, like Event names."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    problems = [f"may not contain '{char}'" for char in ("/", "%") if char in name]
    return problems


def qualified_name(name: str) -> list[str]:
    parts = name.split("/")
    if len(parts) > 2:
        return [QUALIFIED_NAME_SHAPE]
    problems = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {problem}" for problem in dns1123_subdomain(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _full(QUALIFIED_NAME, name):
        problems.append(QUALIFIED_NAME_MESSAGE)
    return problems


def label_value(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _full(LABEL_VALUE, value):
        problems.append(LABEL_VALUE_MESSAGE)
    return problems


def config_key(key: str) -> list[str]:
    problems = []
    if len(key) > 253:
        problems.append("must be no more than 253 characters")
    if not _full(CONFIG_KEY, key):
        problems.append(CONFIG_KEY_MESSAGE)
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def validate_metadata(meta: dict[str, Any], *, name_check: Any) -> list[FieldError]:
    """Validate ObjectMeta: name, labels, annotations, ownerReferences, finalizers."""
    found: list[FieldError] = []
    name = meta.get("name", "")
    if not name:
        detail = "name or generateName is required"
        found.append(FieldError("Required value", "metadata.name", detail))
    else:
        for problem in name_check(name):
            found.append(FieldError("Invalid value", "metadata.name", problem, name))

    found += _validate_labels(meta.get("labels") or {})
    found += _validate_annotations(meta.get("annotations") or {})
    found += _validate_owners_and_finalizers(meta)
    return found


def _validate_labels(labels: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    for key, value in sorted(labels.items()):
        for problem in qualified_name(key):
            found.append(FieldError("Invalid value", "metadata.labels", problem, key))
        for problem in label_value(str(value)):
            found.append(FieldError("Invalid value", "metadata.labels", problem, value))
    return found


def _validate_annotations(annotations: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    total = 0
    for key, value in sorted(annotations.items()):
        for problem in qualified_name(key.lower()):
            found.append(FieldError("Invalid value", "metadata.annotations", problem, key))
        total += len(key) + len(str(value))
    if total > MAX_ANNOTATIONS_SIZE:
        detail = f"must have at most {MAX_ANNOTATIONS_SIZE} bytes"
        found.append(FieldError("Too long", "metadata.annotations", detail))
    return found


def _validate_owners_and_finalizers(meta: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    for index, owner in enumerate(meta.get("ownerReferences") or []):
        path = f"metadata.ownerReferences[{index}]"
        for required in ("apiVersion", "kind", "name", "uid"):
            if not owner.get(required):
                found.append(FieldError("Invalid value", f"{path}.{required}", "", ""))
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        path = f"metadata.finalizers[{index}]"
        for problem in qualified_name(str(finalizer)):
            found.append(FieldError("Invalid value", path, problem, finalizer))
    return found


def decode_secret_data(data: dict[str, Any]) -> dict[str, bytes]:
    """Decode base64 `data` values; raise ValueError worded like Go's decoder."""
    decoded = {}
    for key, value in data.items():
        if value is None:
            decoded[key] = b""
            continue
        if not isinstance(value, str):
            kind = "number" if isinstance(value, (int, float)) else type(value).__name__
            raise ValueError(
                f"json: cannot unmarshal {kind} into Go struct field Secret.data of type []uint8"
            )
        text = value.replace("\r", "").replace("\n", "")
        try:
            decoded[key] = b64decode(text, validate=True)
        except ValueError:
            raise ValueError(f"illegal base64 data at input byte {_bad_byte(text)}") from None
    return decoded


def _bad_byte(text: str) -> int:
    """Return the offset Go's base64 decoder reports: the first bad character, or the
    start of the incomplete last quantum."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    stripped = text.rstrip("=")
    for index, char in enumerate(stripped):
        if char not in alphabet:
            return index
    return len(text) - len(text) % 4


def validate_secret(secret: dict[str, Any], decoded: dict[str, bytes]) -> list[FieldError]:
    found = validate_metadata(secret.get("metadata", {}), name_check=dns1123_subdomain)
    total = 0
    for key in sorted(decoded):
        for problem in config_key(key):
            found.append(FieldError("Invalid value", f"data[{key}]", problem, key))
        total += len(decoded[key])
    if total > MAX_SECRET_SIZE:
        # NOTE: worded as apimachinery's field.TooLong wrote it up to 1.31; 1.32 may
        # word the detail differently. The field, reason and code are the same.
        found.append(FieldError("Too long", "data", f"must have at most {MAX_SECRET_SIZE} bytes"))
    found += _validate_secret_type(secret, decoded)
    return found


def _validate_secret_type(secret: dict[str, Any], decoded: dict[str, bytes]) -> list[FieldError]:
    kind = secret.get("type", "")
    annotations = secret.get("metadata", {}).get("annotations") or {}
    found: list[FieldError] = []
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            path = "metadata.annotations[kubernetes.io/service-account.name]"
            found.append(FieldError("Required value", path))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind.endswith("dockercfg") else ".dockerconfigjson"
        if key not in decoded:
            found.append(FieldError("Required value", f"data[{key}]"))
        else:
            try:
                json.loads(decoded[key] or b"null")
            except ValueError as error:
                redacted = "<secret contents redacted>"
                found.append(FieldError("Invalid value", f"data[{key}]", str(error), redacted))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in decoded and "password" not in decoded:
            found.append(FieldError("Required value", "data[username]"))
    elif kind == "kubernetes.io/ssh-auth":
        if not decoded.get("ssh-privatekey"):
            found.append(FieldError("Required value", "data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        for key in ("tls.key", "tls.crt"):
            if key not in decoded:
                found.append(FieldError("Required value", f"data[{key}]"))
    return found


def validate_secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    if new.get("type") != old.get("type"):
        found.append(FieldError("Invalid value", "type", "field is immutable", new.get("type")))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            found.append(FieldError("Forbidden", "immutable", IMMUTABLE_SET))
        if (new.get("data") or {}) != (old.get("data") or {}):
            found.append(FieldError("Forbidden", "data", IMMUTABLE_SET))
    return found


def validate_namespace(namespace: dict[str, Any]) -> list[FieldError]:
    return validate_metadata(namespace.get("metadata", {}), name_check=dns1123_label)


def validate_lease(lease: dict[str, Any]) -> list[FieldError]:
    found = validate_metadata(lease.get("metadata", {}), name_check=dns1123_subdomain)
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        path = "spec.leaseDurationSeconds"
        found.append(FieldError("Invalid value", path, "must be greater than 0", duration))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        detail = "must be greater than or equal to 0"
        found.append(FieldError("Invalid value", "spec.leaseTransitions", detail, transitions))
    return found


def validate_event(event: dict[str, Any], *, strict: bool) -> list[FieldError]:
    """Validate a stored (core/v1) Event; `strict` for writes through events.k8s.io/v1."""
    meta = event.get("metadata", {})
    name_check = dns1123_subdomain if strict else path_segment_name
    found = validate_metadata(meta, name_check=name_check)
    namespace = meta.get("namespace", "")
    involved = (event.get("involvedObject") or {}).get("namespace", "")
    mismatch = FieldError(
        "Invalid value", "involvedObject.namespace", "does not match event.namespace", involved
    )
    controller_path = "reportingController" if strict else "reportingComponent"
    if not event.get("eventTime"):
        if involved and involved != namespace:
            found.append(mismatch)
        if not involved and namespace not in ("", "default"):
            found.append(mismatch)
    else:
        if not involved and namespace not in ("default", "kube-system"):
            found.append(mismatch)
        for path, value, limit in (
            (controller_path, event.get("reportingComponent", ""), 0),
            ("reportingInstance", event.get("reportingInstance", ""), 128),
            ("action", event.get("action", ""), 128),
            ("reason", event.get("reason", ""), 128),
        ):
            if not value:
                found.append(FieldError("Required value", path))
            elif limit and len(value) > limit:
                detail = f"can have at most {limit} characters"
                found.append(FieldError("Invalid value", path, detail, ""))
        if len(event.get("message", "")) > 1024:
            detail = "can have at most 1024 characters"
            found.append(FieldError("Invalid value", "message", detail, ""))
    if strict:
        found += _validate_strict_event(event)
    return found


def _validate_strict_event(event: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    if not event.get("eventTime"):
        found.append(FieldError("Required value", "eventTime"))
    kind = event.get("type", "")
    if kind not in ("Normal", "Warning"):
        found.append(FieldError("Invalid value", "type", f"has invalid value: {kind}", ""))
    for name in ("firstTimestamp", "lastTimestamp", "count"):
        if event.get(name):
            found.append(FieldError("Invalid value", name, "needs to be unset", ""))
    if any((event.get("source") or {}).values()):
        found.append(FieldError("Invalid value", "source", "needs to be unset", ""))
    return found
