"""managedFields bookkeeping for Update and Apply operations (server-side apply).

The rules follow the Kubernetes server-side apply documentation and the field manager
of kube-apiserver:

- An Update (create, PUT, JSON/merge/strategic patch) gives its manager every field it
  added or changed and takes those fields from every other manager. Entries of one
  Update manager are merged, keyed by manager, apiVersion and subresource.
- An Apply makes its manager own exactly the fields of the applied configuration.
  Fields it applied before and no longer applies are removed from the object unless
  another manager still owns them.
- An Apply that changes a field another manager owns is a conflict unless
  `force=true`, which moves the field to the applier. Applying the same value that
  another manager owns shares the field.
- `apiVersion`, `kind` and the system fields of `metadata` are never owned.
- The time of an entry moves only when the operation changed the object.
- More than ten Update entries are folded, oldest first, into `ancient-changes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import errors
from .fieldpath import (
    MISSING,
    Comparison,
    FieldSet,
    compare,
    from_fields_v1,
    merge,
    named_field_closure,
    path_string,
    remove_paths,
    subtract_recursive,
    to_field_set,
    to_fields_v1,
)

MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"

STRIPPED_FIELDS: FieldSet = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
}


@dataclass
class Entry:
    """One managedFields entry: a manager, its operation and the fields it owns."""

    manager: str
    operation: str
    api_version: str
    fields: FieldSet = field(default_factory=set)
    time: str | None = None
    subresource: str = ""

    def identity(self) -> tuple[str, str, str, str]:
        # Appliers keep one entry across apiVersions; updaters get one per apiVersion.
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """Name the manager the way apply conflicts name it."""
        text = f'"{self.manager}"'
        if self.subresource:
            text = f'{text} with subresource "{self.subresource}"'
        if self.operation == "Update":
            text = f"{text} using {self.api_version}"
        return text

    def encode(self) -> dict[str, Any]:
        """Encode the entry with its keys in the order the real server writes them."""
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def copy(self) -> Entry:
        return Entry(
            self.manager,
            self.operation,
            self.api_version,
            set(self.fields),
            self.time,
            self.subresource,
        )


def decode(raw: Any) -> list[Entry]:
    """Decode `metadata.managedFields`; raise ValueError when it is malformed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("each managedFields entry must be an object")
        if item.get("operation") not in ("Apply", "Update"):
            raise ValueError(f"unsupported operation {item.get('operation')!r}")
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError(f"unsupported fieldsType {item.get('fieldsType')!r}")
        entry = Entry(
            manager=str(item.get("manager", "")),
            operation=item["operation"],
            api_version=str(item.get("apiVersion", "")),
            fields=from_fields_v1(item.get("fieldsV1") or {}),
            time=item.get("time"),
            subresource=str(item.get("subresource", "")),
        )
        entries.append(entry)
    return entries


def encode(entries: list[Entry]) -> list[dict[str, Any]]:
    """Encode entries in the server's order: Apply first, then by time and manager."""
    ordered = sorted(
        entries,
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    return [entry.encode() for entry in ordered]


def is_reset_request(raw: Any) -> bool:
    """Tell whether a write requests stripping managedFields: a list with one empty entry."""
    return isinstance(raw, list) and len(raw) == 1 and raw[0] == {}


@dataclass
class Tracker:
    """Field ownership for one kind: its schema, the fields it ignores, its zero object."""

    schema: Any
    ignored: FieldSet
    zero: dict[str, Any]

    def normalize(self, obj: Any) -> dict[str, Any]:
        """Fill in the structs Go always serializes, so `{}` and absent compare alike.

        A missing object (before a create) is the empty object of the kind.
        """
        result = {} if obj is MISSING else dict(obj)
        for name, value in self.zero.items():
            if name not in result:
                result[name] = value
        return result

    def compare(self, old: Any, new: Any) -> Comparison:
        result = compare(self.normalize(old), self.normalize(new), self.schema)
        return self._owned_part(result)

    def _owned_part(self, changes: Comparison) -> Comparison:
        # System fields are dropped one by one; reset fields (a status) with all below.
        changes = changes.without(self.ignored)
        return Comparison(
            changes.added - STRIPPED_FIELDS,
            changes.modified - STRIPPED_FIELDS,
            changes.removed - STRIPPED_FIELDS,
        )

    def update(
        self,
        entries: list[Entry],
        live: Any,
        new: dict[str, Any],
        *,
        manager: str,
        api_version: str,
        now: str,
    ) -> list[Entry]:
        """Record an Update by `manager` that turns `live` (or MISSING) into `new`."""
        entries = [entry.copy() for entry in entries]
        changes = self.compare(live, new)
        if changes.is_same():
            return entries
        taken = changes.added | changes.modified
        for entry in entries:
            entry.fields -= taken
            entry.fields -= changes.removed

        current = Entry(manager, "Update", api_version, taken, now)
        for entry in entries:
            if entry.identity() == current.identity():
                entry.fields |= taken
                entry.time = now
                break
        else:
            entries.append(current)
        return cap_update_managers([entry for entry in entries if entry.fields])

    def apply(
        self,
        entries: list[Entry],
        live: Any,
        config: dict[str, Any],
        *,
        manager: str,
        api_version: str,
        force: bool,
        now: str,
    ) -> tuple[dict[str, Any], list[Entry]]:
        """Apply `config` for `manager`; return the new object and managedFields.

        Raise an apply conflict (409) when the change takes fields from other managers
        and `force` is not set.
        """
        entries = [entry.copy() for entry in entries]
        if live is not MISSING and not entries:
            # An object without managedFields gets one Update entry that owns what is
            # there, so the first apply cannot silently take or prune those fields.
            entries = self.update(
                [], MISSING, live, manager=BEFORE_FIRST_APPLY, api_version=api_version, now=now
            )

        applied = to_field_set(config, self.schema)
        applied = subtract_recursive(applied, self.ignored) - STRIPPED_FIELDS
        merged = merge(self.normalize(live), config, self.schema)
        previous = self._find(entries, manager, "Apply")
        last = previous.fields if previous else set()
        if previous is None:
            previous = Entry(manager, "Apply", api_version)
            entries.append(previous)
        previous.fields = applied
        previous.api_version = api_version

        result = self._prune(merged, entries, last)
        changes = self.compare(live, result)
        self._settle_conflicts(entries, previous, changes, force)

        if self.normalize(live) != self.normalize(result):
            previous.time = now
        entries = [entry for entry in entries if entry.fields]
        return result, cap_update_managers(entries)

    def _find(self, entries: list[Entry], manager: str, operation: str) -> Entry | None:
        for entry in entries:
            if entry.manager == manager and entry.operation == operation:
                if not entry.subresource:
                    return entry
        return None

    def _prune(self, merged: Any, entries: list[Entry], last: FieldSet) -> Any:
        """Remove fields the applier owned before and no manager owns now.

        Fields that no manager ever owned stay, and so do struct fields above a member
        that a manager still owns.
        """
        if not last:
            return merged
        schema = self.schema
        owned: FieldSet = set()
        for entry in entries:
            owned |= entry.fields
        last_closure = named_field_closure(last, schema)
        owned_closure = named_field_closure(owned, schema)

        merged_set = named_field_closure(self._all_paths(merged), schema)
        first_pass = remove_paths(merged, last_closure, schema)
        first_set = named_field_closure(self._all_paths(first_pass), schema)
        kept = remove_paths(merged, merged_set - (first_set | owned_closure), schema)
        kept_set = named_field_closure(self._all_paths(kept), schema)
        return remove_paths(merged, (merged_set - kept_set) & last_closure, schema)

    def _all_paths(self, obj: Any) -> FieldSet:
        return to_field_set(obj, self.schema)

    def _settle_conflicts(
        self, entries: list[Entry], applier: Entry, changes: Comparison, force: bool
    ) -> None:
        taken = changes.added | changes.modified
        conflicts: list[tuple[str, str]] = []
        for entry in entries:
            if entry is applier:
                continue
            clash = entry.fields & taken
            for path in clash:
                conflicts.append((entry.describe(), path_string(path)))
        if conflicts and not force:
            conflicts.sort()
            raise errors.apply_conflict(conflicts)
        for entry in entries:
            if entry is applier:
                continue
            entry.fields -= taken
            entry.fields -= changes.removed


def cap_update_managers(entries: list[Entry]) -> list[Entry]:
    """Fold the oldest Update entries into `ancient-changes` past the limit of ten."""
    updates = [entry for entry in entries if entry.operation == "Update"]
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return entries
    updates.sort(key=lambda e: (e.time or "", e.manager))
    excess = len(updates) - MAX_UPDATE_MANAGERS + 1
    folded = updates[:excess]
    ancient = next((e for e in entries if e.manager == ANCIENT_CHANGES), None)
    if ancient is None:
        ancient = Entry(ANCIENT_CHANGES, "Update", folded[-1].api_version)
    else:
        folded = [entry for entry in folded if entry is not ancient]
    for entry in folded:
        ancient.fields |= entry.fields
    # The bucket takes the time of the newest entry folded into it.
    ancient.time = folded[-1].time if folded else ancient.time
    remaining = [entry for entry in entries if entry not in folded and entry is not ancient]
    return remaining + [ancient]
