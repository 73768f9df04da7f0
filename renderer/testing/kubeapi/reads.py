"""Get and list, with label and field selectors and `limit`/`continue` chunking.

A list response carries the current resource version in `metadata.resourceVersion`.
A chunked list hands out a `continue` token (base64 JSON of the resource version and
the last key, like kube-apiserver's), and `remainingItemCount` when no selector
filtered. Later pages show the state at the first page's resource version.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import errors, tables
from .errors import FieldError
from .protocol import Request, Response, json_response
from .resources import Resource
from .routing import Target
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Key, Record

TOO_LARGE_WAIT = 3.0
EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You "
    "can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the provided "
    "token results in an inconsistent list - objects that were created, modified, or "
    "deleted between the time the first chunk was returned and now may show up in the list."
)

if TYPE_CHECKING:
    from .api import Api


def get(api: Api, target: Target, request: Request) -> Response:
    resource = target.resource
    stored = api.get_stored(resource, target.namespace, target.name)
    if stored is None:
        raise api.not_found(resource, target.name)
    obj = api.view(resource, stored)
    form = tables.wanted_form(request.headers.get("accept", ""))
    if form == "Table":
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        include = request.param("includeObject", "Metadata")
        return json_response(
            200, tables.table(resource, [obj], include_object=include, list_meta=meta)
        )
    if form == "PartialObjectMetadata":
        return json_response(200, tables.partial_metadata(obj))
    return json_response(200, {**obj, "apiVersion": resource.api_version, "kind": resource.kind})


def selectors(resource: Resource, request: Request) -> tuple[list[Any], list[Any]]:
    try:
        label_requirements = parse_label_selector(request.param("labelSelector"))
        field_requirements = parse_field_selector(
            request.param("fieldSelector"), resource.field_labels
        )
    except SelectorError as error:
        raise errors.bad_request(str(error)) from None
    return label_requirements, field_requirements


def matcher(resource: Resource, request: Request) -> Any:
    """Return a predicate on view objects for the request's selectors."""
    label_requirements, field_requirements = selectors(resource, request)
    getters = resource.field_getters

    def matches(obj: dict[str, Any]) -> bool:
        if not labels_match(label_requirements, obj):
            return False
        return fields_match(field_requirements, obj, getters)

    matches.filtered = bool(label_requirements or field_requirements)  # type: ignore[attr-defined]
    return matches


def encode_continue(version: int, last: tuple[str, str]) -> str:
    start = f"{last[0]}/{last[1]}" if last[0] else last[1]
    token = {"v": "meta.k8s.io/v1", "rv": version, "start": start + "\0"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continue(token: str, namespaced: bool) -> tuple[int, tuple[str, str]]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        start = data["start"].rstrip("\0")
        version = int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request(f"continue key is not valid: {token}") from None
    if namespaced and "/" in start:
        namespace, name = start.split("/", 1)
        return version, (namespace, name)
    return version, ("", start)


def list_selection(
    api: Api, target: Target, request: Request
) -> tuple[list[Record], dict[str, Any]]:
    """Return the stored records of one page and the list metadata."""
    resource = target.resource
    matches = matcher(resource, request)
    limit = _limit(request)
    namespace = target.namespace if resource.namespaced and target.namespace else None
    version, exact = _list_version(api, request)
    after = None
    records: Iterator[Record] = api.store.scan(resource.store_key, namespace, after)
    token = request.param("continue")
    if token:
        version, after = decode_continue(token, resource.namespaced)
        if version < api.store.oldest_version():
            raise errors.gone(EXPIRED_CONTINUE)
        records = records_at(api, resource.store_key, namespace, after, version)
    elif exact:
        records = records_at(api, resource.store_key, namespace, None, version)

    selected: list[Record] = []
    last_key = None
    more = False
    scanned = 0
    for record in records:
        if limit and len(selected) >= limit:
            more = True
            break
        scanned += 1
        obj = record.obj
        last_key = _key(obj)
        if matches(api.view(resource, obj)):
            selected.append(record)

    meta: dict[str, Any] = {"resourceVersion": str(version)}
    if more and last_key is not None:
        meta["continue"] = encode_continue(version, last_key)
        if not matches.filtered:
            total = api.store.count(resource.store_key, namespace)
            already = api.store.rank(resource.store_key, namespace, after)
            meta["remainingItemCount"] = max(total - already - scanned, 0)
    return selected, meta


def _list_version(api: Api, request: Request) -> tuple[int, bool]:
    """Return the resource version a list is served at, and whether it is exact.

    Without `resourceVersion` (or with "0") a list shows the latest state. With a
    version and no match (or `NotOlderThan`) the latest state must be at least that
    new: the server waits a few seconds for it, then fails with 504. With `Exact` the list
    shows the state at that version, or 410 when the history no longer reaches it.
    """
    text = request.param("resourceVersion")
    match = request.param("resourceVersionMatch")
    _check_list_options(request, text, match)
    store = api.store
    if text in ("", "0"):
        return store.resource_version, False
    version = int(text)
    if match == "Exact" and version < store.oldest_version():
        raise errors.gone(f"too old resource version: {version} ({store.oldest_version() + 1})")
    if not store.wait_for_version(version, TOO_LARGE_WAIT):
        message = f"Too large resource version: {version}, current: {store.resource_version}"
        raise errors.ApiError(504, "Timeout", message, {"retryAfterSeconds": 1})
    if match == "Exact":
        return version, True
    return store.resource_version, False


def _check_list_options(request: Request, text: str, match: str) -> None:
    found: list[FieldError] = []
    if text and not text.isdigit():
        detail = "must be a valid resource version"
        found.append(FieldError("Invalid value", "resourceVersion", detail, text))
    if match and match not in ("Exact", "NotOlderThan"):
        supported = 'supported values: "Exact", "NotOlderThan", ""'
        found.append(FieldError("Unsupported value", "resourceVersionMatch", supported, match))
    if match and not text:
        detail = "resourceVersionMatch is forbidden unless resourceVersion is provided"
        found.append(FieldError("Forbidden", "resourceVersionMatch", detail))
    if match == "Exact" and text == "0":
        detail = 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
        found.append(FieldError("Forbidden", "resourceVersionMatch", detail))
    if request.param("continue") and text not in ("", "0"):
        detail = "specifying resource version is not allowed when using continue"
        found.append(FieldError("Forbidden", "resourceVersion", detail))
    if found:
        raise errors.invalid("ListOptions", "", found, "meta.k8s.io")


def records_at(
    api: Api, store_key: str, namespace: str | None, after: Key | None, version: int
) -> Iterator[Record]:
    """Yield the records after `after` as they were at `version`, in key order.

    Later pages of a chunked list show the state of the first page's resource version,
    as etcd serves them: objects created since are left out, and objects changed or
    deleted since appear as they were.
    """
    states = api.store.states_at(store_key, version)
    gone_since = sorted(
        key
        for key, state in states.items()
        if state is not None
        and (after is None or key > after)
        and (namespace is None or key[0] == namespace)
        and api.store.get(store_key, key[0], key[1]) is None
    )
    current = api.store.scan(store_key, namespace, after)
    merged = heapq.merge(
        ((_key(record.obj), record) for record in current),
        ((key, Record(states[key])) for key in gone_since),
        key=lambda pair: pair[0],
    )
    for key, record in merged:
        if key not in states:
            yield record
        elif states[key] is not None:
            yield record if record.obj is states[key] else Record(states[key])


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _limit(request: Request) -> int:
    text = request.param("limit")
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f"invalid limit {text!r}: must be an integer") from None
    return max(value, 0)


def list_objects(api: Api, target: Target, request: Request) -> Response:
    resource = target.resource
    with api.store.lock:
        selected, meta = list_selection(api, target, request)
    form = tables.wanted_form(request.headers.get("accept", ""))
    if form == "Table":
        include = request.param("includeObject", "Metadata")
        objs = [api.view(resource, record.obj) for record in selected]
        body = tables.table(resource, objs, include_object=include, list_meta=meta)
        return json_response(200, body)
    if form == "PartialObjectMetadataList":
        items = [tables.partial_metadata(api.view(resource, record.obj)) for record in selected]
        body = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1"}
        return json_response(200, {**body, "metadata": meta, "items": items})
    return Response(
        200, _list_json(api, resource, selected, meta), {"Content-Type": "application/json"}
    )


def _list_json(api: Api, resource: Resource, selected: list[Record], meta: dict[str, Any]) -> bytes:
    """Encode a list; stored objects reuse their cached JSON."""
    head = {"kind": f"{resource.kind}List", "apiVersion": resource.api_version, "metadata": meta}
    prefix = json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"items":['
    if resource.to_view is None:
        parts = [record.item_json() for record in selected]
    else:
        parts = []
        for record in selected:
            view = api.view(resource, record.obj)
            item = {k: v for k, v in view.items() if k not in ("apiVersion", "kind")}
            parts.append(json.dumps(item, separators=(",", ":")).encode())
    return prefix + b",".join(parts) + b"]}"
