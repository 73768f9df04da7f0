"""Schemas of the served kinds and the conversion between the two Event versions.

The schemas define how server-side apply merges and owns each field (see
`fieldpath`) and which fields exist, for field validation. Core and events.k8s.io Events are two
views of one stored object; the converters map the fields that differ in name.
"""

from __future__ import annotations

from typing import Any

from .fieldpath import ATOMIC, AssocList, MapOf, SetList, Struct

OWNER_REFERENCE = Struct(
    {
        name: ATOMIC
        for name in ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
    }
)

OBJECT_META = Struct(
    {
        **{
            name: ATOMIC
            for name in (
                "name",
                "generateName",
                "namespace",
                "selfLink",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            )
        },
        "labels": MapOf(),
        "annotations": MapOf(),
        "ownerReferences": AssocList(("uid",), OWNER_REFERENCE),
        "finalizers": SetList(),
        "managedFields": ATOMIC,
    }
)

OBJECT_REFERENCE = Struct(
    {
        name: ATOMIC
        for name in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    },
    atomic=True,
)

EVENT_SERIES = Struct({"count": ATOMIC, "lastObservedTime": ATOMIC})
EVENT_SOURCE = Struct({"component": ATOMIC, "host": ATOMIC})


def _top(**fields: Any) -> Struct:
    """Build the schema of a kind; fields are listed in the order Go writes them."""
    return Struct({"kind": ATOMIC, "apiVersion": ATOMIC, "metadata": OBJECT_META, **fields})


SECRET_SCHEMA = _top(immutable=ATOMIC, data=MapOf(), stringData=MapOf(), type=ATOMIC)

NAMESPACE_SCHEMA = _top(
    spec=Struct({"finalizers": ATOMIC}),
    status=Struct(
        {
            "phase": ATOMIC,
            "conditions": AssocList(
                ("type",),
                Struct(
                    {
                        name: ATOMIC
                        for name in ("type", "status", "lastTransitionTime", "reason", "message")
                    }
                ),
            ),
        }
    ),
)

LEASE_SCHEMA = _top(
    spec=Struct(
        {
            name: ATOMIC
            for name in (
                "holderIdentity",
                "leaseDurationSeconds",
                "acquireTime",
                "renewTime",
                "leaseTransitions",
                "strategy",
                "preferredHolder",
            )
        }
    )
)

CORE_EVENT_SCHEMA = _top(
    involvedObject=OBJECT_REFERENCE,
    reason=ATOMIC,
    message=ATOMIC,
    source=EVENT_SOURCE,
    firstTimestamp=ATOMIC,
    lastTimestamp=ATOMIC,
    count=ATOMIC,
    type=ATOMIC,
    eventTime=ATOMIC,
    series=EVENT_SERIES,
    action=ATOMIC,
    related=OBJECT_REFERENCE,
    reportingComponent=ATOMIC,
    reportingInstance=ATOMIC,
)

EVENTS_V1_SCHEMA = _top(
    eventTime=ATOMIC,
    series=EVENT_SERIES,
    reportingController=ATOMIC,
    reportingInstance=ATOMIC,
    action=ATOMIC,
    reason=ATOMIC,
    regarding=OBJECT_REFERENCE,
    related=OBJECT_REFERENCE,
    note=ATOMIC,
    type=ATOMIC,
    deprecatedSource=EVENT_SOURCE,
    deprecatedFirstTimestamp=ATOMIC,
    deprecatedLastTimestamp=ATOMIC,
    deprecatedCount=ATOMIC,
)

# core/v1 field name -> events.k8s.io/v1 field name; the two are views of one object.
EVENT_FIELD_MAP = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "reportingComponent": "reportingController",
}
EVENT_SHARED_FIELDS = ("metadata", "eventTime", "series", "action", "reason", "type")
EVENT_SHARED_FIELDS += ("related", "reportingInstance")


def event_to_v1(core: dict[str, Any]) -> dict[str, Any]:
    """Convert a stored core/v1 Event to its events.k8s.io/v1 form."""
    result: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for name in EVENT_SHARED_FIELDS:
        if name in core:
            result[name] = core[name]
    for old, new in EVENT_FIELD_MAP.items():
        if old in core:
            result[new] = core[old]
    result.setdefault("eventTime", None)
    result.setdefault("deprecatedFirstTimestamp", None)
    result.setdefault("deprecatedLastTimestamp", None)
    return result


def event_from_v1(event: dict[str, Any]) -> dict[str, Any]:
    """Convert an events.k8s.io/v1 Event to the stored core/v1 form."""
    result: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for name in EVENT_SHARED_FIELDS:
        if name in event:
            result[name] = event[name]
    for old, new in EVENT_FIELD_MAP.items():
        if new in event:
            result[old] = event[new]
    return result


RESOURCE_ATTRIBUTES = Struct(
    {
        name: ATOMIC
        for name in (
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
            "fieldSelector",
            "labelSelector",
        )
    },
    atomic=True,
)

ACCESS_REVIEW_SCHEMA = _top(
    spec=Struct(
        {
            "resourceAttributes": RESOURCE_ATTRIBUTES,
            "nonResourceAttributes": Struct({"path": ATOMIC, "verb": ATOMIC}, atomic=True),
        }
    ),
    status=Struct({name: ATOMIC for name in ("allowed", "denied", "reason", "evaluationError")}),
)
