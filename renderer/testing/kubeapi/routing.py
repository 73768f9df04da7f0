"""Map a request path and method to a resource, a namespace, a name and an RBAC verb.

Resource paths have the shapes kube-apiserver serves:
`/api/v1/namespaces/{namespace}/{resource}/{name}/{subresource}`,
`/apis/{group}/{version}/...`, cluster-wide `/api/v1/{resource}` (also the list and
watch across all namespaces of a namespaced resource) and the deprecated
`/api/v1/watch/...` form.
"""

from __future__ import annotations

from dataclasses import dataclass

from .resources import Resource


@dataclass
class Target:
    """The object or collection a resource request is about, and its RBAC verb."""

    resource: Resource
    namespace: str
    name: str
    subresource: str
    verb: str

    @property
    def collection(self) -> bool:
        return not self.name


def split_api_path(path: str) -> tuple[str, str, list[str]] | None:
    """Split `/api/v1/...` or `/apis/{group}/{version}/...` into group, version, rest."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def resolve(
    method: str,
    path: str,
    watch_param: bool,
    resources: dict[tuple[str, str, str], Resource],
) -> Target | None:
    """Return the target of a resource request, or None when nothing is served there."""
    split = split_api_path(path)
    if split is None:
        return None
    group, version, rest = split
    legacy_watch = bool(rest) and rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    if not rest:
        return None

    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        nested = resources.get((group, version, rest[2]))
        if nested is not None and nested.namespaced:
            namespace = rest[1]
            rest = rest[2:]
    resource = resources.get((group, version, rest[0]))
    if resource is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    # NOTE: no subresource is served, so namespaces/status and namespaces/finalize
    # return 404 here, unlike on a real server.
    if len(rest) > 2:
        return None
    verb = rbac_verb(method, bool(name), watch_param or legacy_watch)
    return Target(resource, namespace, name, subresource, verb)


def rbac_verb(method: str, named: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if named else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return method.lower()
