"""Decoding request bodies and the per-kind rules applied to every write.

This is the part of kube-apiserver that decodes into Go types and runs the kind's
strategy: unknown fields (with `fieldValidation`), type errors, Secret `stringData`
merged into base64 `data`, defaults (`type: Opaque`, the namespace name label),
fields a client cannot change, and validation.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import yaml

from . import errors, protobuf, validation
from .errors import ApiError, FieldError
from .fieldpath import AssocList, Struct
from .resources import Resource

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
OMIT_EMPTY_META = ("labels", "annotations", "ownerReferences", "finalizers", "managedFields")

# (path, fractional digits): metav1.Time keeps seconds, metav1.MicroTime microseconds.
TIME_FIELDS = {
    "Event": (
        (("firstTimestamp",), 0),
        (("lastTimestamp",), 0),
        (("eventTime",), 6),
        (("series", "lastObservedTime"), 6),
    ),
    "Lease": ((("spec", "acquireTime"), 6), (("spec", "renewTime"), 6)),
}


def cannot_handle(resource: Resource, problem: str) -> ApiError:
    kind = resource.kind
    return errors.bad_request(
        f'{kind} in version "{resource.version}" cannot be handled as a {kind}: {problem}'
    )


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {error}") from None


def parse_yaml(body: bytes) -> Any:
    """Parse a YAML body; JSON (a subset of YAML) takes the much faster JSON parser."""
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    try:
        return yaml.load(body.decode("utf-8") or "null", Loader=YAML_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise errors.bad_request(f"error decoding YAML: {error}") from None


def decode_object(body: bytes, content_type: str, resource: Resource) -> dict[str, Any]:
    """Decode a create or update body (JSON or YAML) and check its apiVersion and kind."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", ""):
        obj = parse_json(body)
    elif media in ("application/yaml", "application/x-yaml"):
        obj = parse_yaml(body)
    elif media == "application/vnd.kubernetes.protobuf":
        try:
            obj = protobuf.decode(body, resource.kind)
        except protobuf.ProtobufError as error:
            raise cannot_handle(resource, str(error)) from None
    else:
        raise errors.unsupported_media_type(content_type, ["application/json", "application/yaml"])
    if not isinstance(obj, dict):
        raise cannot_handle(resource, "json: cannot unmarshal non-object into Go value")
    check_type_meta(obj, resource, required=False)
    return obj


def check_type_meta(obj: dict[str, Any], resource: Resource, *, required: bool) -> None:
    version = obj.get("apiVersion")
    kind = obj.get("kind")
    if required and not kind:
        raise errors.bad_request("Object 'Kind' is missing in the request body")
    if required and not version:
        raise errors.bad_request("Object 'apiVersion' is missing in the request body")
    if version and version != resource.api_version:
        raise errors.bad_request(
            f"the API version in the data ({version}) does not match the expected API "
            f"version ({resource.api_version})"
        )
    if kind and kind != resource.kind:
        raise cannot_handle(
            resource, f'no kind "{kind}" is registered for version "{resource.api_version}"'
        )


def unknown_fields(value: Any, node: Any, prefix: str = "") -> list[str]:
    """List the fields of `value` the schema does not declare, as `spec.foo` paths."""
    found: list[str] = []
    if isinstance(node, Struct) and isinstance(value, dict):
        for name, child in value.items():
            path = f"{prefix}.{name}" if prefix else name
            if name not in node.fields:
                found.append(path)
            else:
                found += unknown_fields(child, node.fields[name], path)
    elif isinstance(node, AssocList) and isinstance(value, list):
        for index, item in enumerate(value):
            found += unknown_fields(item, node.element, f"{prefix}[{index}]")
    return found


def drop_fields(value: Any, node: Any) -> Any:
    """Return `value` without undeclared fields, as decoding into Go types does."""
    if isinstance(node, Struct) and isinstance(value, dict):
        return {
            name: drop_fields(child, node.fields[name])
            for name, child in value.items()
            if name in node.fields
        }
    if isinstance(node, AssocList) and isinstance(value, list):
        return [drop_fields(item, node.element) for item in value]
    return value


def check_field_types(obj: dict[str, Any], resource: Resource) -> None:
    """Reject values Go could not decode: a non-object metadata, non-string labels, ..."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise cannot_handle(resource, "json: cannot unmarshal into Go struct field .metadata")
    for name in ("labels", "annotations"):
        _check_string_map((meta or {}).get(name), f"ObjectMeta.metadata.{name}", resource)
    if resource.kind == "Secret":
        _check_string_map(obj.get("stringData"), "Secret.stringData", resource)
        data = obj.get("data")
        if data is not None and not isinstance(data, dict):
            raise cannot_handle(resource, "json: cannot unmarshal into Go struct field Secret.data")
        if obj.get("immutable") is not None and not isinstance(obj["immutable"], bool):
            raise cannot_handle(
                resource,
                "json: cannot unmarshal into Go struct field Secret.immutable of type bool",
            )
        if obj.get("type") is not None and not isinstance(obj["type"], str):
            raise cannot_handle(
                resource, "json: cannot unmarshal into Go struct field Secret.type of type string"
            )


def _check_string_map(value: Any, where: str, resource: Resource) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise cannot_handle(resource, f"json: cannot unmarshal into Go struct field {where}")
    for item in value.values():
        if item is not None and not isinstance(item, str):
            kind = "number" if isinstance(item, (int, float)) else "value"
            raise cannot_handle(
                resource,
                f"json: cannot unmarshal {kind} into Go struct field {where} of type string",
            )


def field_validation(
    obj: dict[str, Any], resource: Resource, directive: str, warnings: list[str]
) -> dict[str, Any]:
    """Apply `fieldValidation` (Strict, Warn or Ignore) to a decoded create/update body."""
    unknown = unknown_fields(obj, resource.schema)
    if unknown and directive == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise cannot_handle(resource, f"strict decoding error: {listed}")
    if unknown and directive == "Warn":
        warnings.extend(f'unknown field "{path}"' for path in unknown)
    return drop_fields(obj, resource.schema)


def canonical(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """Bring an object to the form Go would store and return.

    Secret `stringData` is merged into base64 `data` and dropped. Empty maps and lists
    that Go omits are dropped, and the structs Go always writes are filled in.
    """
    result = dict(obj)
    result["apiVersion"] = resource.api_version
    result["kind"] = resource.kind
    meta = dict(result.get("metadata") or {})
    for name in OMIT_EMPTY_META:
        if not meta.get(name):
            meta.pop(name, None)
    result["metadata"] = meta
    if resource.kind == "Secret":
        result = _canonical_secret(resource, result)
    for path, digits in TIME_FIELDS.get(resource.kind, ()):
        result = _with_time(resource, result, path, digits)
    if resource.kind == "Namespace":
        # Defaulting labels every namespace with its own name.
        labels = dict(meta.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
        meta["labels"] = labels
    for name, value in resource.zero.items():
        result.setdefault(name, value)
    return result


def format_time(text: Any, digits: int) -> str:
    """Parse an RFC 3339 time and write it as Go writes a Time (0) or MicroTime (6)."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time string")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    if digits:
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _with_time(resource: Resource, obj: dict[str, Any], path: tuple[str, ...], digits: int) -> Any:
    """Return `obj` with the time at `path` rewritten; nested dicts are copied, not changed."""
    value = obj.get(path[0])
    if len(path) > 1:
        if not isinstance(value, dict):
            return obj
        return {**obj, path[0]: _with_time(resource, value, path[1:], digits)}
    if value is None:
        return obj
    try:
        return {**obj, path[0]: format_time(value, digits)}
    except ValueError:
        layout = "2006-01-02T15:04:05.000000Z07:00" if digits else "2006-01-02T15:04:05Z07:00"
        raise cannot_handle(
            resource, f'parsing time "{value}" as "{layout}": cannot parse "{value}"'
        ) from None


def _canonical_secret(resource: Resource, secret: dict[str, Any]) -> dict[str, Any]:
    try:
        decoded = validation.decode_secret_data(secret.get("data") or {})
    except ValueError as error:
        raise cannot_handle(resource, str(error)) from None
    for key, value in (secret.pop("stringData", None) or {}).items():
        decoded[key] = (value or "").encode("utf-8")
    if decoded:
        secret["data"] = {key: base64.b64encode(value).decode() for key, value in decoded.items()}
    else:
        secret.pop("data", None)
    if secret.get("immutable") is None:
        secret.pop("immutable", None)
    if not secret.get("type"):
        secret["type"] = "Opaque"
    return secret


def in_schema_order(obj: Any, node: Any) -> Any:
    """Return `obj` with the keys of each struct in the order Go writes them."""
    if not isinstance(node, Struct) or not isinstance(obj, dict):
        return obj
    ordered = {
        name: in_schema_order(obj[name], child)
        for name, child in node.fields.items()
        if name in obj
    }
    for name, value in obj.items():
        ordered.setdefault(name, value)
    return ordered


def prepare_create(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """Set the defaults a create gets from the kind's strategy."""
    if resource.kind == "Namespace":
        obj = {**obj, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    return obj


def prepare_update(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Keep what a main-resource update cannot change (a namespace's status and finalizers)."""
    if resource.kind == "Namespace":
        new = {**new, "spec": old.get("spec", {}), "status": old.get("status", {})}
    return new


def validate(
    resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None, group_view: str
) -> list[FieldError]:
    """Run the kind's validation (and its update validation when `old` is given)."""
    found: list[FieldError] = []
    if resource.kind == "Secret":
        if old is not None:
            found += validation.validate_secret_update(obj, old)
        decoded = validation.decode_secret_data(obj.get("data") or {})
        found += validation.validate_secret(obj, decoded)
    elif resource.kind == "Namespace":
        found += validation.validate_namespace(obj)
    elif resource.kind == "Lease":
        found += validation.validate_lease(obj)
    elif resource.kind == "Event":
        strict = group_view == "events.k8s.io" and old is None
        found += validation.validate_event(obj, strict=strict)
    return found
