"""The resource API: dispatch of resource requests to their verbs, and shared helpers.

`Api` owns the store and the resource table. The verbs live in `reads`, `writes`,
`apply`, `deletion` and `watch`. Each takes the `Api`, the resolved `Target` and the
`Request`.
"""

from __future__ import annotations

from typing import Any

from . import apply, deletion, errors, objects, reads, watch, writes
from .managed import Entry, Tracker
from .protocol import Request, Response, status_response
from .resources import Resource, build_resources
from .routing import Target, resolve
from .store import Store

START_NAMESPACES = ("default", "kube-public", "kube-system")


class Api:
    """State and helpers shared by every verb."""

    def __init__(self, history_size: int = 50_000, bookmark_interval: float = 60.0) -> None:
        self.store = Store(history_size)
        self.resources = build_resources()
        self.by_path = {(r.group, r.version, r.plural): r for r in self.resources}
        self.storage_resources = {r.store_key: r for r in self.resources if r.to_view is None}
        self.trackers: dict[int, Tracker] = {}
        self.views: dict[str, dict[str, Resource]] = {}
        for resource in self.resources:
            self.views.setdefault(resource.store_key, {})[resource.api_version] = resource
        self.bookmark_interval = bookmark_interval
        self.reset()

    def reset(self) -> None:
        """Forget every object and start again with the namespaces of a new cluster."""
        namespaces = self.by_path[("", "v1", "namespaces")]
        with self.store.lock:
            self.store.clear()
            for name in START_NAMESPACES:
                body = {"metadata": {"name": name}}
                writes.create_object(self, namespaces, body, manager="kube-apiserver")

    def entries_in_view(self, resource: Resource, entries: list[Entry]) -> list[Entry]:
        """Translate the field paths of entries recorded through other versions of the
        same object (core and events.k8s.io Events) into this resource's paths."""
        return [
            self._translated(resource, entry, entry.api_version, resource.api_version)
            for entry in entries
        ]

    def entries_in_own_versions(self, resource: Resource, entries: list[Entry]) -> list[Entry]:
        """Translate entries back to the paths of the version each was recorded with."""
        return [
            self._translated(resource, entry, resource.api_version, entry.api_version)
            for entry in entries
        ]

    def _translated(self, resource: Resource, entry: Entry, source: str, target: str) -> Entry:
        if source == target:
            return entry
        views = self.views.get(resource.store_key, {})
        if source not in views or target not in views:
            return entry
        to_storage = views[source].renames
        from_storage = {old: new for new, old in views[target].renames.items()}
        copy = entry.copy()
        copy.fields = {_renamed(path, to_storage, from_storage) for path in entry.fields}
        return copy

    def tracker(self, resource: Resource) -> Tracker:
        tracker = self.trackers.get(id(resource))
        if tracker is None:
            ignored = {
                tuple(f"f:{part}" for part in path.split(".")) for path in resource.reset_fields
            }
            tracker = Tracker(resource.schema, ignored, resource.zero)
            self.trackers[id(resource)] = tracker
        return tracker

    def storage(self, resource: Resource) -> Resource:
        """Return the resource whose form is stored (core Events for events.k8s.io Events)."""
        return self.storage_resources[resource.store_key]

    def view(self, resource: Resource, stored: dict[str, Any]) -> dict[str, Any]:
        if resource.to_view is None:
            return stored
        return objects.in_schema_order(resource.to_view(stored), resource.schema)

    def to_storage(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if resource.from_view is None:
            return obj
        return resource.from_view(obj)

    def response_object(self, resource: Resource, stored: dict[str, Any]) -> dict[str, Any]:
        """Return a stored object as a response body: in the resource's view, typed."""
        answer = dict(self.view(resource, stored))
        answer["apiVersion"] = resource.api_version
        answer["kind"] = resource.kind
        return objects.in_schema_order(answer, resource.schema)

    def persist(self, resource: Resource, stored: dict[str, Any], change: str) -> dict[str, Any]:
        """Store an object (in storage form) under a new resource version; return it."""
        meta = {**stored["metadata"], "resourceVersion": str(self.store.next_version())}
        stored = objects.in_schema_order(
            {**stored, "metadata": meta}, self.storage(resource).schema
        )
        self.store.put(resource.store_key, stored, change)
        return stored

    def get_stored(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(resource.store_key, namespace, name)

    def namespace(self, name: str) -> dict[str, Any] | None:
        return self.store.get("/namespaces", "", name)

    def not_found(self, resource: Resource, name: str) -> errors.ApiError:
        return errors.not_found(resource.plural, name, resource.group)

    def resolve(self, request: Request) -> Target | None:
        watch = request.param("watch").lower() in ("true", "1")
        return resolve(request.method, request.path, watch, self.by_path)

    def handle(self, target: Target, request: Request) -> Response:
        """Run one resource request; failures come back as Status responses."""
        handlers = {
            "get": reads.get,
            "list": reads.list_objects,
            "watch": watch.watch,
            "create": writes.create,
            "update": writes.update,
            "patch": writes.patch,
            "delete": deletion.delete,
            "deletecollection": deletion.delete_collection,
        }
        handler = handlers.get(target.verb)
        if target.verb == "patch" and writes.media_type(request) == writes.APPLY:
            handler = apply.apply
        if target.resource.kind == "SelfSubjectAccessReview" and target.verb == "create":
            handler = writes.review_access
        try:
            if handler is None or target.verb not in target.resource.verbs:
                raise errors.method_not_allowed(request.method)
            return handler(self, target, request)
        except errors.ApiError as error:
            return status_response(error)


def _renamed(
    path: tuple[str, ...], to_storage: dict[str, str], from_storage: dict[str, str]
) -> tuple[str, ...]:
    """Rename the top-level field of a path from one view to another."""
    if not path or not path[0].startswith("f:"):
        return path
    name = to_storage.get(path[0][2:], path[0][2:])
    name = from_storage.get(name, name)
    return ("f:" + name, *path[1:])
