"""The resources this server serves: their names, schemas and per-kind facts.

Each `Resource` contains what discovery publishes (group, version, plural, verbs,
short names) and the schema that server-side apply and field validation walk. It also
contains the empty object of the kind (the structs Go always serializes), the field
selectors the real server accepts, and whether an update may create the object.
Core and events.k8s.io Events share one storage, as they do in kube-apiserver,
through a converter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .fieldpath import Struct
from .schemas import (
    ACCESS_REVIEW_SCHEMA,
    CORE_EVENT_SCHEMA,
    EVENT_FIELD_MAP,
    EVENTS_V1_SCHEMA,
    LEASE_SCHEMA,
    NAMESPACE_SCHEMA,
    SECRET_SCHEMA,
    event_from_v1,
    event_to_v1,
)

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Column:
    """One column of the Table that `kubectl get` prints."""

    name: str
    type: str
    description: str
    cell: Callable[[dict[str, Any]], Any]
    format: str = ""
    priority: int = 0


@dataclass
class Resource:
    """One REST resource: /api/v1/secrets, /apis/coordination.k8s.io/v1/leases, ..."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    schema: Struct
    zero: dict[str, Any]
    short_names: list[str] = field(default_factory=list)
    field_labels: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    field_getters: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    allow_create_on_update: bool = False
    storage: str = ""
    to_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    from_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    columns: list[Column] = field(default_factory=list)
    reset_fields: tuple[str, ...] = ()
    categories: list[str] = field(default_factory=list)
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    renames: dict[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> str:
        return self.storage or f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _age(obj: dict[str, Any]) -> Any:
    return obj.get("metadata", {}).get("creationTimestamp")


def _name(obj: dict[str, Any]) -> Any:
    return obj.get("metadata", {}).get("name", "")


NAME_COLUMN = Column("Name", "string", "Name must be unique within a namespace.", _name, "name")
AGE_COLUMN = Column("Age", "string", "CreationTimestamp of the object.", _age)


def _secret_getters() -> dict[str, Callable[[dict[str, Any]], Any]]:
    return {"type": lambda obj: obj.get("type", "")}


def _event_getters(view: str) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Field selectors of Events, in the words of the given view."""
    reference = "involvedObject" if view == "core" else "regarding"
    getters: dict[str, Callable[[dict[str, Any]], Any]] = {}
    for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        getters[f"{reference}.{name}"] = lambda obj, n=name, r=reference: obj.get(r, {}).get(n, "")
    getters["reason"] = lambda obj: obj.get("reason", "")
    getters["type"] = lambda obj: obj.get("type", "")
    if view == "core":
        getters["source"] = lambda obj: obj.get("source", {}).get("component", "")
        getters["reportingComponent"] = lambda obj: obj.get("reportingComponent", "")
    else:
        getters["reportingController"] = lambda obj: obj.get("reportingController", "")
    return getters


def build_resources() -> list[Resource]:
    """Return the served resources, in discovery order."""
    return [
        _namespaces(),
        _secrets(),
        _core_events(),
        _leases(),
        _v1_events(),
        _access_reviews(),
    ]


def _secrets() -> Resource:
    return Resource(
        group="",
        version="v1",
        kind="Secret",
        plural="secrets",
        singular="secret",
        namespaced=True,
        schema=SECRET_SCHEMA,
        zero={"metadata": {}},
        field_labels=("metadata.name", "metadata.namespace", "type"),
        field_getters=_secret_getters(),
        columns=[
            NAME_COLUMN,
            Column("Type", "string", "The type of the secret", lambda o: o.get("type", "")),
            Column("Data", "string", "The number of keys", lambda o: len(o.get("data") or {})),
            AGE_COLUMN,
        ],
    )


def _access_reviews() -> Resource:
    """SelfSubjectAccessReview, which `kubectl auth can-i` and permission checks create."""
    return Resource(
        group="authorization.k8s.io",
        version="v1",
        kind="SelfSubjectAccessReview",
        plural="selfsubjectaccessreviews",
        singular="selfsubjectaccessreview",
        namespaced=False,
        schema=ACCESS_REVIEW_SCHEMA,
        zero={"metadata": {}, "spec": {}, "status": {}},
        verbs=("create",),
        storage="selfsubjectaccessreviews",
    )


def _namespaces() -> Resource:
    return Resource(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        namespaced=False,
        schema=NAMESPACE_SCHEMA,
        zero={"metadata": {}, "spec": {}, "status": {}},
        short_names=["ns"],
        verbs=tuple(verb for verb in ALL_VERBS if verb != "deletecollection"),
        field_labels=("metadata.name", "status.phase"),
        field_getters={"status.phase": lambda obj: obj.get("status", {}).get("phase", "")},
        columns=[
            NAME_COLUMN,
            Column(
                "Status",
                "string",
                "The status of the namespace",
                lambda o: o.get("status", {}).get("phase", ""),
            ),
            AGE_COLUMN,
        ],
        reset_fields=("status",),
    )


def _leases() -> Resource:
    return Resource(
        group="coordination.k8s.io",
        version="v1",
        kind="Lease",
        plural="leases",
        singular="lease",
        namespaced=True,
        schema=LEASE_SCHEMA,
        zero={"metadata": {}, "spec": {}},
        allow_create_on_update=True,
        columns=[
            NAME_COLUMN,
            Column(
                "Holder",
                "string",
                "The holder of the lease",
                lambda o: o.get("spec", {}).get("holderIdentity", "<none>"),
            ),
            AGE_COLUMN,
        ],
    )


def _core_events() -> Resource:
    return Resource(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        schema=CORE_EVENT_SCHEMA,
        zero={
            "metadata": {},
            "involvedObject": {},
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "eventTime": None,
        },
        short_names=["ev"],
        field_labels=("metadata.name", "metadata.namespace", *_event_getters("core")),
        field_getters=_event_getters("core"),
        allow_create_on_update=True,
        storage="events",
        columns=[
            Column("Last Seen", "string", "Time of the last occurrence", _event_last_seen),
            Column("Type", "string", "Type of this event", lambda o: o.get("type", "")),
            Column("Reason", "string", "Why the action was taken", lambda o: o.get("reason", "")),
            Column("Object", "string", "The object this event is about", _event_object),
            Column("Message", "string", "A description", lambda o: o.get("message", "")),
        ],
        categories=[],
    )


def _v1_events() -> Resource:
    return Resource(
        group="events.k8s.io",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        schema=EVENTS_V1_SCHEMA,
        zero={
            "metadata": {},
            "eventTime": None,
            "deprecatedFirstTimestamp": None,
            "deprecatedLastTimestamp": None,
        },
        short_names=["ev"],
        field_labels=("metadata.name", "metadata.namespace", *_event_getters("v1")),
        field_getters=_event_getters("v1"),
        allow_create_on_update=True,
        storage="events",
        to_view=event_to_v1,
        from_view=event_from_v1,
        renames={new: old for old, new in EVENT_FIELD_MAP.items()},
        columns=[NAME_COLUMN, AGE_COLUMN],
    )


def _event_last_seen(obj: dict[str, Any]) -> Any:
    return obj.get("lastTimestamp") or obj.get("eventTime") or _age(obj)


def _event_object(obj: dict[str, Any]) -> str:
    reference = obj.get("involvedObject", {})
    return f"{str(reference.get('kind', '')).lower()}/{reference.get('name', '')}"
