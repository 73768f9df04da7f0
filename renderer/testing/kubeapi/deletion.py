"""Delete and deletecollection, with preconditions, finalizers and namespace termination.

An object with finalizers is only marked (`deletionTimestamp`) and goes away when an
update removes its last finalizer. Deleting a namespace deletes every object in it.
The namespace is first marked Terminating, then its contents are deleted, then the
namespace itself. kube-apiserver leaves that to the namespace controller, which takes
a few seconds and waits for the finalizers of the objects inside. Here it finishes
within the request and ignores those finalizers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors, options
from .errors import FieldError
from .objects import parse_json
from .protocol import Request, Response, json_response, now
from .reads import list_selection
from .resources import Resource
from .routing import Target

if TYPE_CHECKING:
    from .api import Api

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def _delete_options(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request.body.strip():
        parsed = parse_json(request.body)
        if not isinstance(parsed, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        body = parsed
    found = options.dry_run_errors(request)
    dry_run = body.get("dryRun") or []
    if any(value != "All" for value in dry_run):
        found.append(FieldError("Unsupported value", "dryRun", 'supported values: "All"', dry_run))
    policy = body.get("propagationPolicy") or request.param("propagationPolicy")
    if policy and policy not in ("Orphan", "Background", "Foreground"):
        supported = 'supported values: "Foreground", "Background", "Orphan"'
        found.append(FieldError("Unsupported value", "propagationPolicy", supported, policy))
    if found:
        raise errors.invalid("DeleteOptions", "", found, "meta.k8s.io")
    body["dryRun"] = bool(dry_run or request.query.get("dryRun"))
    return body


def delete(api: Api, target: Target, request: Request) -> Response:
    opts = _delete_options(request)
    resource = target.resource
    preconditions = opts.get("preconditions") or {}
    with api.store.lock:
        live = api.get_stored(resource, target.namespace, target.name)
        if live is None:
            raise api.not_found(resource, target.name)
        _check(resource, live, preconditions)
        if resource.kind == "Namespace":
            if target.name in PROTECTED_NAMESPACES:
                reason = "this namespace may not be deleted"
                raise errors.forbidden("namespaces", target.name, reason)
            result = terminate_namespace(api, live, dry_run=opts["dryRun"])
            return json_response(200, api.response_object(resource, result))
        result, removed = delete_object(api, resource, live, dry_run=opts["dryRun"])
    if removed:
        return json_response(200, _success(resource, live))
    return json_response(200, api.response_object(resource, result))


def delete_collection(api: Api, target: Target, request: Request) -> Response:
    opts = _delete_options(request)
    resource = target.resource
    if resource.kind == "Namespace":
        raise errors.method_not_allowed(request.method)
    with api.store.lock:
        records, _ = list_selection(api, target, request)
        deleted = []
        for record in records:
            result, _ = delete_object(api, resource, record.obj, dry_run=opts["dryRun"])
            deleted.append(api.view(resource, result))
    body = {
        "kind": f"{resource.kind}List",
        "apiVersion": resource.api_version,
        "metadata": {"resourceVersion": str(api.store.resource_version)},
        "items": deleted,
    }
    return json_response(200, body)


def _check(resource: Resource, live: dict[str, Any], preconditions: dict[str, Any]) -> None:
    meta = live["metadata"]
    uid = preconditions.get("uid")
    version = preconditions.get("resourceVersion")
    if uid and uid != meta.get("uid"):
        actual = meta.get("uid", "")
        raise errors.uid_precondition_failed(
            resource.plural, meta["name"], uid, actual, resource.group
        )
    if version and version != meta.get("resourceVersion"):
        reason = (
            f"Precondition failed: ResourceVersion in precondition: {version}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion')}"
        )
        raise errors.conflict(resource.plural, meta["name"], reason, resource.group)


def delete_object(
    api: Api, resource: Resource, live: dict[str, Any], *, dry_run: bool
) -> tuple[dict[str, Any], bool]:
    """Delete one object, or only mark it while finalizers remain.

    Return its last state and whether it is gone (or, in a dry run, would be gone).
    """
    meta = live["metadata"]
    if meta.get("finalizers"):
        if meta.get("deletionTimestamp"):
            return live, False
        marked = {
            **live,
            "metadata": {**meta, "deletionTimestamp": now(), "deletionGracePeriodSeconds": 0},
        }
        if dry_run:
            return marked, False
        return api.persist(resource, marked, "MODIFIED"), False
    if dry_run:
        return live, True
    return finish_deletion(api, resource, live), True


def finish_deletion(api: Api, resource: Resource, last: dict[str, Any]) -> dict[str, Any]:
    """Remove an object for good; watchers see it with a new resource version."""
    final = {**last, "metadata": {**last["metadata"]}}
    final["metadata"]["resourceVersion"] = str(api.store.next_version())
    api.store.remove(resource.store_key, final)
    return final


def terminate_namespace(api: Api, live: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """Mark a namespace Terminating, delete everything in it, then delete it."""
    namespaces = api.storage_resources["/namespaces"]
    meta = {**live["metadata"]}
    meta.setdefault("deletionTimestamp", now())
    terminating = {
        **live,
        "metadata": meta,
        "status": {**live.get("status", {}), "phase": "Terminating"},
    }
    if dry_run:
        return terminating
    if not live["metadata"].get("deletionTimestamp"):
        terminating = api.persist(namespaces, terminating, "MODIFIED")
    name = meta["name"]
    for resource in api.storage_resources.values():
        if not resource.namespaced:
            continue
        for record in list(api.store.scan(resource.store_key, name)):
            stripped = {**record.obj, "metadata": {**record.obj["metadata"]}}
            stripped["metadata"].pop("finalizers", None)
            finish_deletion(api, resource, stripped)
    finish_deletion(api, namespaces, terminating)
    return terminating


def _success(resource: Resource, live: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {"name": live["metadata"]["name"]}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    details["uid"] = live["metadata"].get("uid", "")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
