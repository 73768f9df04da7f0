"""Server-side printing: the `Table` and `PartialObjectMetadata` forms of responses.

`kubectl get` requests `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
columns the server chooses. The garbage collector and some tools request metadata only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .resources import Resource


def wanted_form(accept: str) -> str:
    """Return "Table", "PartialObjectMetadata", "PartialObjectMetadataList" or ""."""
    for choice in accept.split(","):
        params = dict(part.strip().split("=", 1) for part in choice.split(";")[1:] if "=" in part)
        if params.get("g") == "meta.k8s.io" and params.get("as"):
            return params["as"]
        media = choice.split(";")[0].strip()
        if media in ("application/json", "*/*", "application/*", "application/yaml"):
            return ""
    return ""


def human_age(timestamp: str | None) -> str:
    """Format the time since `timestamp` the way kubectl's AGE column does."""
    if not timestamp:
        return "<unknown>"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.now(UTC) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = divmod(days, 365)
    return f"{years}y{rest}d" if rest and years < 8 else f"{years}y"


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def _cell(column: Any, obj: dict[str, Any]) -> Any:
    value = column.cell(obj)
    if column.name in ("Age", "Last Seen"):
        return human_age(value)
    return value


def table(
    resource: Resource,
    objects: list[dict[str, Any]],
    *,
    include_object: str,
    list_meta: dict[str, Any],
    with_columns: bool = True,
) -> dict[str, Any]:
    """Build a meta.k8s.io/v1 Table of `objects` (already in the resource's view)."""
    definitions = [
        {
            "name": column.name,
            "type": column.type,
            "format": column.format,
            "description": column.description,
            "priority": column.priority,
        }
        for column in resource.columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [_cell(column, obj) for column in resource.columns]}
        if include_object == "Object":
            row["object"] = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions if with_columns else [],
        "rows": rows,
    }
