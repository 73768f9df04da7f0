"""Create, update (PUT) and patch, including server-side apply.

The order of steps follows kube-apiserver: decode and default the body, check the
namespace (admission), record managedFields, run the kind's strategy and validation,
then store. With `dryRun=All` every step runs but nothing is stored, and the response
carries the resource version the object already had (none for a create).
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from . import errors, managed, objects, options
from .deletion import finish_deletion
from .errors import ApiError
from .fieldpath import MISSING
from .patches import PatchError, apply_json_patch, apply_merge_patch, apply_strategic_patch
from .protocol import Request, Response, json_response, new_uid, now
from .resources import Resource
from .routing import Target

if TYPE_CHECKING:
    from .api import Api

APPLY = "application/apply-patch+yaml"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    APPLY: "apply",
}


def create(api: Api, target: Target, request: Request) -> Response:
    if target.name:
        raise errors.method_not_allowed(request.method)
    opts = options.write_options(request, "CreateOptions")
    obj = objects.decode_object(request.body, request.content_type, target.resource)
    warnings: list[str] = []
    obj = objects.field_validation(obj, target.resource, opts.field_validation, warnings)
    objects.check_field_types(obj, target.resource)
    obj = place_in_namespace(obj, target)
    if obj["metadata"].get("resourceVersion"):
        raise errors.bad_request("resourceVersion should not be set on objects to be created")
    stored = create_object(
        api,
        target.resource,
        obj,
        manager=opts.manager,
        dry_run=opts.dry_run,
    )
    return json_response(201, api.response_object(target.resource, stored), warnings)


def create_object(
    api: Api,
    resource: Resource,
    obj: dict[str, Any],
    *,
    manager: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Create `obj` (in the resource's view) and return what was stored."""
    storage = api.storage(resource)
    with api.store.lock:
        meta = dict(obj.get("metadata") or {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + new_uid().replace("-", "")[:5]
        obj = {**obj, "metadata": meta}
        check_namespace_usable(api, resource, meta.get("namespace", ""))

        view = objects.canonical(resource, obj) if resource.to_view else obj
        stored = objects.canonical(storage, api.to_storage(resource, view))
        entries = api.entries_in_view(resource, request_entries(stored) or [])
        reset = managed.is_reset_request(meta.get("managedFields"))
        if not reset:
            tracker = api.tracker(resource)
            new_view = without_managed(api.view(resource, stored))
            entries = tracker.update(
                entries,
                MISSING,
                new_view,
                manager=manager,
                api_version=resource.api_version,
                now=now(),
            )
            entries = api.entries_in_own_versions(resource, entries)
        stored = objects.prepare_create(storage, stored)
        stored = system_fields_for_create(stored)
        stored = with_managed(stored, [] if reset else entries)

        found = objects.validate(storage, stored, None, resource.group)
        if found:
            raise errors.invalid(resource.kind, meta.get("name", ""), found, resource.group)
        name = stored["metadata"]["name"]
        if api.get_stored(resource, stored["metadata"].get("namespace", ""), name) is not None:
            raise errors.already_exists(resource.plural, name, resource.group)
        if dry_run:
            return stored
        return api.persist(resource, stored, "ADDED")


def update(api: Api, target: Target, request: Request) -> Response:
    if not target.name:
        raise errors.method_not_allowed(request.method)
    opts = options.write_options(request, "UpdateOptions")
    resource = target.resource
    obj = objects.decode_object(request.body, request.content_type, resource)
    warnings: list[str] = []
    obj = objects.field_validation(obj, resource, opts.field_validation, warnings)
    objects.check_field_types(obj, resource)
    obj = place_in_namespace(obj, target)
    check_name(obj, target)

    with api.store.lock:
        live = api.get_stored(resource, target.namespace, target.name)
        if live is None:
            if not resource.allow_create_on_update:
                raise api.not_found(resource, target.name)
            obj["metadata"].pop("resourceVersion", None)
            stored = create_object(api, resource, obj, manager=opts.manager, dry_run=opts.dry_run)
            return json_response(201, api.response_object(resource, stored), warnings)
        stored = replace_object(
            api, resource, live, obj, manager=opts.manager, dry_run=opts.dry_run
        )
    return json_response(200, api.response_object(resource, stored), warnings)


def replace_object(
    api: Api,
    resource: Resource,
    live: dict[str, Any],
    obj: dict[str, Any],
    *,
    manager: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Run an Update operation: `obj` (in the resource's view) replaces `live`."""
    storage = api.storage(resource)
    meta = obj.get("metadata") or {}
    live_meta = live["metadata"]
    check_preconditions(resource, live, meta.get("uid", ""), meta.get("resourceVersion", ""))

    view = objects.canonical(resource, obj) if resource.to_view else obj
    stored = objects.canonical(storage, api.to_storage(resource, view))
    stored["metadata"] = keep_system_fields(stored["metadata"], live_meta)
    stored = objects.prepare_update(storage, stored, live)

    reset = managed.is_reset_request(meta.get("managedFields"))
    entries: list[managed.Entry] = []
    if not reset:
        entries = api.entries_in_view(resource, request_entries(stored) or live_entries(live))
        tracker = api.tracker(resource)
        entries = tracker.update(
            entries,
            without_managed(api.view(resource, live)),
            without_managed(api.view(resource, stored)),
            manager=manager,
            api_version=resource.api_version,
            now=now(),
        )
        entries = api.entries_in_own_versions(resource, entries)
    stored = with_managed(stored, entries)
    return commit_update(api, resource, live, stored, dry_run=dry_run)


def commit_update(
    api: Api, resource: Resource, live: dict[str, Any], stored: dict[str, Any], *, dry_run: bool
) -> dict[str, Any]:
    """Validate and store the new state of an existing object."""
    storage = api.storage(resource)
    found = objects.validate(storage, stored, live, resource.group)
    if found:
        name = stored["metadata"].get("name", "")
        raise errors.invalid(resource.kind, name, found, resource.group)
    stored["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    if stored == live or dry_run:
        return stored
    if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
        return finish_deletion(api, resource, stored)
    return api.persist(resource, stored, "MODIFIED")


def patch(api: Api, target: Target, request: Request) -> Response:
    if not target.name:
        raise errors.method_not_allowed(request.method)
    patch_type = PATCH_TYPES.get(media_type(request))
    if patch_type is None:
        raise errors.unsupported_media_type(request.content_type, list(PATCH_TYPES))
    opts = options.write_options(request, "PatchOptions")

    resource = target.resource
    warnings: list[str] = []
    with api.store.lock:
        live = api.get_stored(resource, target.namespace, target.name)
        if live is None:
            raise api.not_found(resource, target.name)
        document = copy.deepcopy(api.view(resource, live))
        patched = _patched(resource, document, patch_type, request.body)
        objects.check_type_meta(patched, resource, required=False)
        patched = objects.field_validation(patched, resource, opts.field_validation, warnings)
        objects.check_field_types(patched, resource)
        patched = place_in_namespace(patched, target)
        check_name(patched, target)
        stored = replace_object(
            api, resource, live, patched, manager=opts.manager, dry_run=opts.dry_run
        )
    return json_response(200, api.response_object(resource, stored), warnings)


def media_type(request: Request) -> str:
    return request.content_type.split(";")[0].strip().lower()


def _patched(resource: Resource, document: dict[str, Any], patch_type: str, body: bytes) -> Any:
    try:
        patch_body = json.loads(body or b"null")
    except ValueError as error:
        raise errors.bad_request(f"error decoding patch: {error}") from None
    try:
        if patch_type == "json":
            result = apply_json_patch(document, patch_body)
        elif patch_type == "merge":
            if not isinstance(patch_body, dict):
                raise PatchError("json: cannot unmarshal non-object into Go value")
            result = apply_merge_patch(document, patch_body)
        else:
            result = apply_strategic_patch(document, patch_body, resource.schema)
    except PatchError as error:
        if patch_type == "json":
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {error}",
            ) from None
        raise errors.bad_request(str(error)) from None
    if not isinstance(result, dict):
        raise objects.cannot_handle(resource, "json: cannot unmarshal non-object into Go value")
    return result


def place_in_namespace(obj: dict[str, Any], target: Target) -> dict[str, Any]:
    """Set or check the namespace of a body against the request path."""
    meta = dict(obj.get("metadata") or {})
    body_namespace = meta.get("namespace", "")
    if not target.resource.namespaced:
        meta.pop("namespace", None)
    elif not body_namespace:
        meta["namespace"] = target.namespace
    elif body_namespace != target.namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    return {**obj, "metadata": meta}


def check_name(obj: dict[str, Any], target: Target) -> None:
    name = obj["metadata"].get("name", "")
    if name != target.name:
        raise errors.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({target.name})"
        )


def check_namespace_usable(api: Api, resource: Resource, namespace: str) -> None:
    if not resource.namespaced:
        return
    found = api.namespace(namespace)
    if found is None:
        raise errors.not_found("namespaces", namespace)
    if found.get("status", {}).get("phase") == "Terminating":
        raise errors.ApiError(
            403,
            "Forbidden",
            f'{resource.plural} "{""}" is forbidden: unable to create new content in namespace '
            f"{namespace} because it is being terminated",
            {"kind": resource.plural},
        )


def check_preconditions(resource: Resource, live: dict[str, Any], uid: str, version: str) -> None:
    live_meta = live["metadata"]
    name = live_meta["name"]
    if uid and uid != live_meta.get("uid"):
        actual = live_meta.get("uid", "")
        raise errors.uid_precondition_failed(resource.plural, name, uid, actual, resource.group)
    if version and version != live_meta.get("resourceVersion"):
        raise errors.conflict(resource.plural, name, errors.STALE_OBJECT, resource.group)


def system_fields_for_create(stored: dict[str, Any]) -> dict[str, Any]:
    meta = dict(stored["metadata"])
    for name in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "resourceVersion"):
        meta.pop(name, None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now()
    return {**stored, "metadata": meta}


def keep_system_fields(meta: dict[str, Any], live_meta: dict[str, Any]) -> dict[str, Any]:
    meta = dict(meta)
    for name in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if name in live_meta:
            meta[name] = live_meta[name]
        else:
            meta.pop(name, None)
    if "generation" in live_meta:
        meta["generation"] = live_meta["generation"]
    meta.pop("selfLink", None)
    return meta


def request_entries(obj: dict[str, Any]) -> list[managed.Entry] | None:
    """Entries sent in a request body: used when valid and not empty, as the server does."""
    raw = obj.get("metadata", {}).get("managedFields")
    if not raw or managed.is_reset_request(raw):
        return None
    try:
        return managed.decode(raw) or None
    except ValueError:
        return None


def live_entries(live: dict[str, Any]) -> list[managed.Entry]:
    try:
        return managed.decode(live["metadata"].get("managedFields"))
    except ValueError:
        return []


def without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def with_managed(obj: dict[str, Any], entries: list[managed.Entry]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    if entries:
        meta["managedFields"] = managed.encode(entries)
    return {**obj, "metadata": meta}


def review_access(api: Api, target: Target, request: Request) -> Response:
    """Review access for the caller: this server allows every request.

    Nothing is stored, as on a real server, and the review comes back with its status.
    """
    opts = options.write_options(request, "CreateOptions")
    resource = target.resource
    obj = objects.decode_object(request.body, request.content_type, resource)
    warnings: list[str] = []
    obj = objects.field_validation(obj, resource, opts.field_validation, warnings)
    spec = obj.get("spec") or {}
    if not spec.get("resourceAttributes") and not spec.get("nonResourceAttributes"):
        detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        error = errors.FieldError("Invalid value", "spec.resourceAttributes", detail)
        raise errors.invalid(resource.kind, "", [error.with_raw("null")], resource.group)
    status = {"allowed": True, "reason": "the Kubernetes API test server allows every request"}
    answer = {**obj, "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
    answer["apiVersion"] = resource.api_version
    answer["kind"] = resource.kind
    return json_response(201, answer, warnings)
