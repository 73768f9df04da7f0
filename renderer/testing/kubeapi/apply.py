"""Server-side apply: `PATCH` with `Content-Type: application/apply-patch+yaml`.

The body is YAML or JSON and must name its apiVersion and kind. `fieldManager` is
required, `metadata.managedFields` must be absent, a field the schema does not declare
fails the request (with the real server's 500 and wording), and an apply of a missing
object creates it. Ownership and conflicts are computed in `managed`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import errors, managed, objects, options
from .errors import ApiError
from .fieldpath import MISSING
from .protocol import Request, Response, json_response, now
from .resources import Resource
from .routing import Target
from .writes import (
    check_namespace_usable,
    check_preconditions,
    commit_update,
    keep_system_fields,
    live_entries,
    system_fields_for_create,
    with_managed,
    without_managed,
)

if TYPE_CHECKING:
    from .api import Api

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def apply(api: Api, target: Target, request: Request) -> Response:
    opts = options.write_options(request, "PatchOptions", apply=True)
    resource = target.resource
    config = _decode_configuration(request.body, resource)
    config = _placed(config, target)

    with api.store.lock:
        live = api.get_stored(resource, target.namespace, target.name)
        meta = config["metadata"]
        if live is None:
            check_namespace_usable(api, resource, target.namespace)
            if meta.get("resourceVersion") or meta.get("uid"):
                raise api.not_found(resource, target.name)
            live_view: Any = MISSING
            entries: list[managed.Entry] = []
        else:
            check_preconditions(
                resource, live, meta.get("uid", ""), meta.get("resourceVersion", "")
            )
            live_view = without_managed(api.view(resource, live))
            entries = api.entries_in_view(resource, live_entries(live))

        merged, entries = api.tracker(resource).apply(
            entries,
            live_view,
            config,
            manager=opts.manager,
            api_version=resource.api_version,
            force=opts.force,
            now=now(),
        )
        entries = api.entries_in_own_versions(resource, entries)
        merged = _sync_last_applied(merged, config, opts.manager)
        stored = _to_stored(api, resource, merged)
        if live is None:
            stored = _commit_create(api, resource, stored, entries, dry_run=opts.dry_run)
            return json_response(201, api.response_object(resource, stored))
        storage = api.storage(resource)
        stored["metadata"] = keep_system_fields(stored["metadata"], live["metadata"])
        stored = objects.prepare_update(storage, stored, live)
        stored = with_managed(stored, entries)
        stored = commit_update(api, resource, live, stored, dry_run=opts.dry_run)
    return json_response(200, api.response_object(resource, stored))


def _decode_configuration(body: bytes, resource: Resource) -> dict[str, Any]:
    config = objects.parse_yaml(body)
    if not isinstance(config, dict):
        raise errors.bad_request("error decoding YAML: the applied configuration is not an object")
    objects.check_type_meta(config, resource, required=True)
    meta = config.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise objects.cannot_handle(
            resource, "json: cannot unmarshal into Go struct field .metadata"
        )
    if (meta or {}).get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    return _without_nulls(config)


def _without_nulls(value: Any) -> Any:
    # NOTE: null values in an applied configuration are dropped; the real server keeps
    # some of them as explicit nulls in the merge.
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _placed(config: dict[str, Any], target: Target) -> dict[str, Any]:
    """Check the name and namespace of the configuration and fill them in when absent."""
    resource = target.resource
    meta = dict(config.get("metadata") or {})
    name = meta.get("name")
    if name and name != target.name:
        raise errors.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({target.name})"
        )
    namespace = meta.get("namespace")
    if resource.namespaced and namespace and namespace != target.namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    unknown = objects.unknown_fields(config, resource.schema)
    if unknown:
        raise _undeclared(target, unknown)
    objects.check_field_types(config, resource)
    meta["name"] = target.name
    if resource.namespaced:
        meta["namespace"] = target.namespace
    else:
        meta.pop("namespace", None)
    return {**config, "metadata": meta}


def _undeclared(target: Target, unknown: list[str]) -> ApiError:
    """Build the error of an applied field the schema lacks.

    kube-apiserver (1.32) sends this as a 500 without a reason, because the typed
    conversion error is not a Status error.
    """
    resource = target.resource
    group = resource.group
    where = f"{target.namespace}/{target.name}; {group}/{resource.version}, Kind={resource.kind}"
    paths = ["." + path for path in unknown]
    if len(paths) == 1:
        problem = f"{paths[0]}: field not declared in schema"
    else:
        problem = "errors:\n" + "\n".join(
            f"  {path}: field not declared in schema" for path in paths
        )
    return ApiError(500, "", f"failed to create typed patch object ({where}): {problem}")


def _sync_last_applied(
    merged: dict[str, Any], config: dict[str, Any], manager: str
) -> dict[str, Any]:
    """Keep kubectl's client-side apply annotation in step when `kubectl` applies.

    The server does this only for the manager `kubectl` and only when the annotation
    is already there, so a later client-side apply does not undo the server-side one.
    """
    annotations = (merged.get("metadata") or {}).get("annotations") or {}
    if manager != "kubectl" or LAST_APPLIED not in annotations:
        return merged
    applied = json.loads(json.dumps(config))
    applied_annotations = dict(applied.get("metadata", {}).get("annotations") or {})
    applied_annotations.pop(LAST_APPLIED, None)
    if applied_annotations:
        applied["metadata"]["annotations"] = applied_annotations
    else:
        applied.get("metadata", {}).pop("annotations", None)
    annotations = {**annotations, LAST_APPLIED: json.dumps(applied, separators=(",", ":")) + "\n"}
    return {**merged, "metadata": {**merged["metadata"], "annotations": annotations}}


def _to_stored(api: Api, resource: Resource, merged: dict[str, Any]) -> dict[str, Any]:
    view = objects.canonical(resource, merged) if resource.to_view else merged
    return objects.canonical(api.storage(resource), api.to_storage(resource, view))


def _commit_create(
    api: Api,
    resource: Resource,
    stored: dict[str, Any],
    entries: list[managed.Entry],
    *,
    dry_run: bool,
) -> dict[str, Any]:
    storage = api.storage(resource)
    stored = objects.prepare_create(storage, stored)
    stored = system_fields_for_create(stored)
    stored = with_managed(stored, entries)
    found = objects.validate(storage, stored, None, resource.group)
    if found:
        name = stored["metadata"].get("name", "")
        raise errors.invalid(resource.kind, name, found, resource.group)
    if dry_run:
        return stored
    return api.persist(resource, stored, "ADDED")
