"""Discovery and OpenAPI: what clients read before they talk to a resource.

Legacy discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`) is enough for
kubectl, which falls back to it from aggregated discovery, and for the Python
client's DynamicClient. OpenAPI v3 is served only as far as kubectl reads it: kubectl
looks for the `fieldValidation` parameter on the PATCH operation of a kind before it
sends `fieldValidation=Strict` instead of validating on the client.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import Resource

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")


def _verbs(resource: Resource) -> list[str]:
    return list(resource.verbs)


def _storage_hash(resource: Resource) -> str:
    digest = hashlib.sha256(f"{resource.api_version}/{resource.kind}".encode()).digest()
    return digest[:8].hex()


def resource_list(resources: list[Resource], group: str, version: str) -> dict[str, Any] | None:
    served = [r for r in resources if r.group == group and r.version == version]
    if not served:
        return None
    entries = []
    for resource in served:
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": _verbs(resource),
        }
        if resource.short_names:
            entry["shortNames"] = resource.short_names
        if resource.categories:
            entry["categories"] = resource.categories
        entry["storageVersionHash"] = _storage_hash(resource)
        entries.append(entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


def _group_entry(group: str, version: str) -> dict[str, Any]:
    version_entry = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [version_entry], "preferredVersion": version_entry}


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def group_list(resources: list[Resource]) -> dict[str, Any]:
    groups = []
    seen = set()
    for resource in resources:
        if resource.group and resource.group not in seen:
            seen.add(resource.group)
            groups.append(_group_entry(resource.group, resource.version))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(resources: list[Resource], name: str) -> dict[str, Any] | None:
    for resource in resources:
        if resource.group == name and name:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, resource.version)}
    return None


def _group_versions(resources: list[Resource]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for resource in resources:
        pair = (resource.group, resource.version)
        if pair not in found:
            found.append(pair)
    return found


def _openapi_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_root(resources: list[Resource]) -> dict[str, Any]:
    paths = {}
    for group_name, version in _group_versions(resources):
        document = openapi_document(resources, group_name, version)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()
        path = _openapi_path(group_name, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def _parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _operation(resource: Resource, action: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    return {
        "operationId": f"{action}{resource.kind}",
        "parameters": [_parameter(name) for name in extra],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }


def openapi_document(resources: list[Resource], group_name: str, version: str) -> dict[str, Any]:
    """Describe the paths of one group version, with the parameters of each write."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource in resources:
        if (resource.group, resource.version) != (group_name, version):
            continue
        base = "/" + _openapi_path(group_name, version)
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        collection = f"{base}{scope}/{resource.plural}"
        paths[collection] = {
            "get": _operation(resource, "list"),
            "post": _operation(resource, "post", WRITE_PARAMETERS),
        }
        paths[collection + "/{name}"] = {
            "get": _operation(resource, "get"),
            "put": _operation(resource, "put", WRITE_PARAMETERS),
            "patch": _operation(resource, "patch", (*WRITE_PARAMETERS, "force")),
            "delete": _operation(resource, "delete", ("dryRun",)),
        }
        prefix = (
            "io.k8s.api.core.v1"
            if not group_name
            else f"io.k8s.api.{group_name.split('.')[0]}.{version}"
        )
        schemas[f"{prefix}.{resource.kind}"] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [
                {"group": resource.group, "version": resource.version, "kind": resource.kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_for_path(resources: list[Resource], path: str) -> dict[str, Any] | None:
    parts = [part for part in path.split("/") if part]
    if len(parts) == 2 and parts[0] == "api":
        return openapi_document(resources, "", parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        if any(r.group == parts[1] and r.version == parts[2] for r in resources):
            return openapi_document(resources, parts[1], parts[2])
    return None
