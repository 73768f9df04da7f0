"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl's typed clients (`kubectl create secret`, `kubectl create namespace`) send
protobuf. The body is the magic `k8s\\0` followed by a `runtime.Unknown` message whose
`raw` field contains the object. Only the kinds and fields those commands send are
decoded here. Responses are always JSON, which client-go accepts for any request.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"

# Field number -> (JSON name, wire kind, nested schema).
TIME = {1: ("seconds", "int", None), 2: ("nanos", "int", None)}
MANAGED_FIELDS_ENTRY = {
    1: ("manager", "string", None),
    2: ("operation", "string", None),
    3: ("apiVersion", "string", None),
    4: ("time", "time", None),
    6: ("fieldsType", "string", None),
    7: ("fieldsV1", "fields", None),
    8: ("subresource", "string", None),
}
OWNER_REFERENCE = {
    1: ("kind", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
    6: ("controller", "bool", None),
    7: ("blockOwnerDeletion", "bool", None),
}
OBJECT_META = {
    1: ("name", "string", None),
    2: ("generateName", "string", None),
    3: ("namespace", "string", None),
    4: ("selfLink", "string", None),
    5: ("uid", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("generation", "int", None),
    8: ("creationTimestamp", "time", None),
    9: ("deletionTimestamp", "time", None),
    10: ("deletionGracePeriodSeconds", "int", None),
    11: ("labels", "map", "string"),
    12: ("annotations", "map", "string"),
    13: ("ownerReferences", "messages", OWNER_REFERENCE),
    14: ("finalizers", "strings", None),
    17: ("managedFields", "messages", MANAGED_FIELDS_ENTRY),
}
RESOURCE_ATTRIBUTES = {
    1: ("namespace", "string", None),
    2: ("verb", "string", None),
    3: ("group", "string", None),
    4: ("version", "string", None),
    5: ("resource", "string", None),
    6: ("subresource", "string", None),
    7: ("name", "string", None),
}
KINDS = {
    "Secret": {
        1: ("metadata", "message", OBJECT_META),
        2: ("data", "map", "bytes"),
        3: ("type", "string", None),
        4: ("stringData", "map", "string"),
        5: ("immutable", "bool", None),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "message", OBJECT_META),
        2: (
            "spec",
            "message",
            {
                1: ("resourceAttributes", "message", RESOURCE_ATTRIBUTES),
                2: (
                    "nonResourceAttributes",
                    "message",
                    {1: ("path", "string", None), 2: ("verb", "string", None)},
                ),
            },
        ),
    },
    "Namespace": {
        1: ("metadata", "message", OBJECT_META),
        2: ("spec", "message", {1: ("finalizers", "strings", None)}),
        3: ("status", "message", {1: ("phase", "string", None)}),
    },
}


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object this server can read."""


def _varint(data: bytes, index: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if index >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[index]
        index += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, index


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Split a message into (field number, wire type, raw value)."""
    found = []
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, index = _varint(data, index)
        elif wire == 2:
            length, index = _varint(data, index)
            value = data[index : index + length]
            index += length
        elif wire == 1:
            value, index = data[index : index + 8], index + 8
        elif wire == 5:
            value, index = data[index : index + 4], index + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        found.append((number, wire, value))
    return found


def _message(data: bytes, schema: dict[int, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number not in schema:
            continue
        name, kind, nested = schema[number]
        value = _value(raw, kind, nested)
        if kind in ("strings", "messages"):
            result.setdefault(name, []).append(value)
        elif kind == "map":
            result.setdefault(name, {}).update(value)
        elif value not in ("", None, 0) or kind == "bool":
            result[name] = value
    return result


def _value(raw: Any, kind: str, nested: Any) -> Any:
    if kind in ("string", "strings"):
        return bytes(raw).decode("utf-8")
    if kind in ("int", "bool"):
        return bool(raw) if kind == "bool" else raw
    if kind in ("message", "messages"):
        return _message(raw, nested)
    if kind == "time":
        seconds = _message(raw, TIME).get("seconds", 0)
        if not seconds:
            return None
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "fields":
        inner = _message(raw, {1: ("raw", "string", None)})
        return json.loads(inner.get("raw") or "{}")
    if kind == "map":
        entry = {
            1: ("key", "string", None),
            2: ("value", "string" if nested == "string" else "raw", None),
        }
        pairs = {}
        for number, _, value in _fields(raw):
            if number in entry:
                pairs[number] = value
        key = bytes(pairs.get(1, b"")).decode("utf-8")
        value = bytes(pairs.get(2, b""))
        if nested == "bytes":
            return {key: base64.b64encode(value).decode()}
        return {key: value.decode("utf-8")}
    return raw


def decode(body: bytes, kind: str) -> dict[str, Any]:
    """Decode a protobuf body into the JSON form of the object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix")
    envelope = {f[0]: f[2] for f in _fields(body[len(MAGIC) :])}
    type_meta = _message(
        envelope.get(1, b""), {1: ("apiVersion", "string", None), 2: ("kind", "string", None)}
    )
    sent_kind = type_meta.get("kind", kind)
    schema = KINDS.get(sent_kind)
    if schema is None:
        raise ProtobufError(f"protobuf bodies of kind {sent_kind!r} are not supported")
    obj = _message(envelope.get(2, b""), schema)
    return {**type_meta, **obj}
