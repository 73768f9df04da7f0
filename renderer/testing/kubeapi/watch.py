"""Watch: a chunked stream of ADDED, MODIFIED, DELETED, BOOKMARK and ERROR events.

Without `resourceVersion` (or with "0") the stream starts with an ADDED event per
existing object. From a resource version it replays the history after it. A version
older than the kept history gets one ERROR event carrying a 410 Expired Status, so the
client lists again. With `allowWatchBookmarks=true` an idle stream gets a
BOOKMARK (only `metadata.resourceVersion` set) every `bookmark_interval` seconds.
With `sendInitialEvents=true` the initial events end with a BOOKMARK annotated
`k8s.io/initial-events-end: "true"`. An object that stops matching the selectors is
sent as DELETED, one that starts matching as ADDED, as the watch cache does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import errors, tables
from .protocol import Request, Response
from .reads import matcher
from .resources import Resource
from .routing import Target
from .store import Change

if TYPE_CHECKING:
    from .api import Api

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1800.0
TOO_LARGE_WAIT = 3.0


def watch(api: Api, target: Target, request: Request) -> Response:
    resource = target.resource
    matches = matcher(resource, request)
    name = target.name
    namespace = target.namespace if resource.namespaced and target.namespace else None
    timeout = _timeout(request)
    bookmarks = request.flag("allowWatchBookmarks")
    send_initial = request.param("sendInitialEvents") == "true"
    version_text = request.param("resourceVersion")
    as_table = tables.wanted_form(request.headers.get("accept", "")) == "Table"

    def wanted(obj: dict[str, Any]) -> bool:
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        if name and obj["metadata"].get("name") != name:
            return False
        return matches(api.view(resource, obj))

    start = _start(api, resource, version_text, send_initial, namespace, wanted)
    encoder = _Encoder(api, resource, as_table, request.param("includeObject", "Metadata"))
    logger.debug("watch started on %s in %s from %r", resource.qualified, namespace, version_text)
    stream = _events(api, resource, start, wanted, encoder, timeout, bookmarks, send_initial)
    return Response(200, None, {"Content-Type": "application/json"}, stream=stream)


def _timeout(request: Request) -> float:
    text = request.param("timeoutSeconds")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise errors.bad_request(f"invalid timeoutSeconds {text!r}") from None


class _Start:
    """The start of a stream: initial objects, a history position, or an error event."""

    def __init__(
        self,
        initial: list[dict[str, Any]],
        position: int,
        error: dict[str, Any] | None,
        version: int = 0,
    ) -> None:
        self.initial = initial
        self.position = position
        self.error = error
        self.version = version


def _start(
    api: Api,
    resource: Resource,
    version_text: str,
    send_initial: bool,
    namespace: str | None,
    wanted: Any,
) -> _Start:
    store = api.store
    if version_text in ("", "0") or send_initial:
        with store.lock:
            initial = [r.obj for r in store.scan(resource.store_key, namespace) if wanted(r.obj)]
            return _Start(initial, store.end_position(), None, store.resource_version)
    try:
        version = int(version_text)
    except ValueError:
        raise errors.bad_request(f"invalid resource version {version_text!r}") from None
    if not store.wait_for_version(version, TOO_LARGE_WAIT):
        message = f"Too large resource version: {version}, current: {store.resource_version}"
        status = errors.ApiError(504, "Timeout", message, {"retryAfterSeconds": 1}).status
        return _Start([], 0, status)
    with store.lock:
        if version < store.oldest_version():
            message = f"too old resource version: {version} ({store.oldest_version() + 1})"
            return _Start([], 0, errors.gone(message).status)
        return _Start([], store.position_after(version), None)


class _Encoder:
    """Turn stored objects into watch event lines, as objects or as Table rows."""

    def __init__(self, api: Api, resource: Resource, as_table: bool, include: str) -> None:
        self.api = api
        self.resource = resource
        self.as_table = as_table
        self.include = include
        self.first = True

    def event(self, kind: str, stored: dict[str, Any]) -> bytes:
        obj = dict(self.api.view(self.resource, stored))
        obj["apiVersion"] = self.resource.api_version
        obj["kind"] = self.resource.kind
        if self.as_table and kind != "BOOKMARK":
            obj = tables.table(
                self.resource,
                [obj],
                include_object=self.include,
                list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                with_columns=self.first,
            )
            self.first = False
        return _line(kind, obj)

    def bookmark(self, version: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(version), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": meta,
        }
        return _line("BOOKMARK", obj)


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _events(
    api: Api,
    resource: Resource,
    start: _Start,
    wanted: Any,
    encoder: _Encoder,
    timeout: float,
    bookmarks: bool,
    send_initial: bool,
) -> Iterator[bytes]:
    if start.error is not None:
        yield _line("ERROR", start.error)
        return
    for obj in start.initial:
        yield encoder.event("ADDED", obj)
    if send_initial and bookmarks:
        yield encoder.bookmark(start.version, initial_end=True)

    store = api.store
    epoch = store.epoch
    position = start.position
    deadline = time.monotonic() + timeout
    last_bookmark = time.monotonic()
    while not store.closed and store.epoch == epoch:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wait = min(remaining, api.bookmark_interval if bookmarks else remaining, 1.0)
        changes, position, lost, complete = store.changes_since(position, wait, epoch)
        if lost:
            message = "too old resource version: the watch fell behind the kept history"
            yield _line("ERROR", errors.gone(message).status)
            return
        for change in changes:
            line = _translate(change, resource, wanted, encoder)
            if line:
                yield line
        if bookmarks and time.monotonic() - last_bookmark >= api.bookmark_interval:
            yield encoder.bookmark(complete)
            last_bookmark = time.monotonic()
    logger.debug("watch on %s stopped", resource.qualified)


def _translate(change: Change, resource: Resource, wanted: Any, encoder: _Encoder) -> bytes | None:
    if change.store_key != resource.store_key:
        return None
    now_matches = wanted(change.obj)
    if change.type == "MODIFIED":
        before = change.previous is not None and wanted(change.previous)
        if now_matches and before:
            return encoder.event("MODIFIED", change.obj)
        if now_matches:
            return encoder.event("ADDED", change.obj)
        if before:
            return encoder.event("DELETED", change.obj)
        return None
    if now_matches:
        return encoder.event(change.type, change.obj)
    return None
