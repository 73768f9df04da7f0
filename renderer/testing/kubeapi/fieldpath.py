"""Field paths, field sets and the typed walks that server-side apply is built on.

A path is a tuple of FieldsV1 keys: `f:name` for a struct field or map key,
`k:{"uid":"..."}` for an item of an associative list, `v:"x"` for an item of a set.
The schema nodes define how each part of an object merges, as the structured-merge-diff
schema of kube-apiserver does: granular structs and maps merge per key, atomic values
are replaced whole, sets merge per item, associative lists merge per key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]
FieldSet = set[Path]
MISSING: Any = object()


@dataclass(frozen=True)
class Scalar:
    """A leaf: replaced whole by a merge, owned whole."""

    granular = False


@dataclass
class Struct:
    """An object with named fields; `atomic` structs are replaced and owned whole."""

    fields: dict[str, Any] = field(default_factory=dict)
    atomic: bool = False

    @property
    def granular(self) -> bool:
        return not self.atomic


@dataclass(frozen=True)
class MapOf:
    """A map whose keys merge and are owned one by one (labels, annotations, data)."""

    element: Any = Scalar()
    granular = True


@dataclass(frozen=True)
class SetList:
    """A list of scalars that merges as a set (`+listType=set`, like finalizers)."""

    granular = True


@dataclass
class AssocList:
    """A list of structs that merges per key (`+listType=map`, like ownerReferences)."""

    keys: tuple[str, ...]
    element: Struct
    granular = True


ATOMIC = Scalar()


def field_key(name: str) -> str:
    return "f:" + name


def item_key(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    chosen = {name: item.get(name) for name in sorted(keys) if name in item}
    return "k:" + json.dumps(chosen, separators=(",", ":"), sort_keys=True)


def value_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def child_node(node: Any, name: str) -> Any:
    if isinstance(node, Struct):
        return node.fields.get(name, ATOMIC)
    if isinstance(node, MapOf):
        return node.element
    return ATOMIC


def _is_granular(node: Any) -> bool:
    return node.granular


def _is_empty(value: Any) -> bool:
    return value is MISSING or value is None or value == {} or value == []


def _children(value: Any, node: Any) -> dict[str, tuple[Any, Any]]:
    """Map each FieldsV1 key below `value` to (child value, child node)."""
    if isinstance(node, (Struct, MapOf)) and isinstance(value, dict):
        return {field_key(name): (item, child_node(node, name)) for name, item in value.items()}
    if isinstance(node, SetList) and isinstance(value, list):
        return {value_key(item): (item, ATOMIC) for item in value}
    if isinstance(node, AssocList) and isinstance(value, list):
        return {
            item_key(item, node.keys): (item, node.element)
            for item in value
            if isinstance(item, dict)
        }
    return {}


def to_field_set(value: Any, node: Any, prefix: Path = ()) -> FieldSet:
    """Return the fields an applied configuration sets: its leaves and list items."""
    found: FieldSet = set()
    _collect_leaves(value, node, prefix, found)
    return found


def _collect_leaves(value: Any, node: Any, path: Path, found: FieldSet) -> None:
    if not _is_granular(node):
        if path:
            found.add(path)
        return
    if isinstance(node, (SetList, AssocList)) and path:
        for key in _children(value, node):
            found.add(path + (key,))
    for key, (child, child_schema) in _children(value, node).items():
        if isinstance(node, SetList):
            continue
        _collect_leaves(child, child_schema, path + (key,), found)


@dataclass
class Comparison:
    """Fields added, modified and removed between two versions of an object."""

    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    def is_same(self) -> bool:
        return not (self.added or self.modified or self.removed)

    def without(self, ignored: FieldSet) -> Comparison:
        return Comparison(
            subtract_recursive(self.added, ignored),
            subtract_recursive(self.modified, ignored),
            subtract_recursive(self.removed, ignored),
        )


def compare(old: Any, new: Any, node: Any) -> Comparison:
    """Compare two objects field by field, as structured-merge-diff's Compare does.

    A container that appears or disappears is listed itself as well as its leaves
    (this is where the `.` entries of Update managers come from). Containers that are
    empty on both sides count as leaves, which keeps `{}` apart from a missing field.
    """
    result = Comparison()
    _compare(old, new, node, (), result)
    return result


def _compare(old: Any, new: Any, node: Any, path: Path, out: Comparison) -> None:
    if old is MISSING and new is MISSING:
        return
    if path:
        if old is MISSING:
            out.added.add(path)
        elif new is MISSING:
            out.removed.add(path)
    leaf = not _is_granular(node) or (_is_empty(old) and _is_empty(new))
    if leaf:
        if old is not MISSING and new is not MISSING and old != new and path:
            out.modified.add(path)
        return
    old_children = _children(old, node) if old is not MISSING else {}
    new_children = _children(new, node) if new is not MISSING else {}
    for key, (old_child, child_schema) in old_children.items():
        new_child = new_children.get(key, (MISSING, None))[0]
        _compare(old_child, new_child, child_schema, path + (key,), out)
    for key, (new_child, child_schema) in new_children.items():
        if key not in old_children:
            _compare(MISSING, new_child, child_schema, path + (key,), out)


def merge(live: Any, config: Any, node: Any) -> Any:
    """Merge an applied configuration into the live object; the configuration wins."""
    if live is MISSING or live is None or not _is_granular(node):
        return config
    if config is None:
        return config
    if isinstance(node, (Struct, MapOf)):
        if not isinstance(live, dict) or not isinstance(config, dict):
            return config
        result = dict(live)
        for name, value in config.items():
            result[name] = merge(live.get(name, MISSING), value, child_node(node, name))
        return result
    if not isinstance(live, list) or not isinstance(config, list):
        return config
    if isinstance(node, SetList):
        return list(config) + [item for item in live if item not in config]
    live_items = _children(live, node)
    config_items = _children(config, node)
    merged = []
    for key, (item, _) in config_items.items():
        merged.append(merge(live_items.get(key, (MISSING, None))[0], item, node.element))
    for key, (item, _) in live_items.items():
        if key not in config_items:
            merged.append(item)
    return merged


def remove_paths(value: Any, paths: FieldSet, node: Any, prefix: Path = ()) -> Any:
    """Return a copy of `value` without the fields in `paths` (and what lies below them)."""
    if not paths or not _is_granular(node):
        return value
    children = _children(value, node)
    kept: dict[str, Any] = {}
    for key, (child, child_schema) in children.items():
        path = prefix + (key,)
        if path in paths:
            continue
        below = {candidate for candidate in paths if candidate[: len(path)] == path}
        kept[key] = remove_paths(child, below, child_schema, path) if below else child
    if isinstance(value, dict):
        return {key[2:]: child for key, child in kept.items()}
    return list(kept.values())


def named_field_closure(paths: FieldSet, node: Any) -> FieldSet:
    """Add every struct field that lies above a member (`EnsureNamedFieldsAreMembers`).

    A manager that owns `.data.foo` also holds on to the struct field `.data`, but not
    to map keys or list items above its members.
    """
    result = set(paths)
    for path in paths:
        current = node
        for depth, key in enumerate(path[:-1]):
            named = isinstance(current, Struct) and not current.atomic
            if named and key.startswith("f:"):
                result.add(path[: depth + 1])
            current = _descend(current, key)
    return result


def _descend(node: Any, key: str) -> Any:
    if key.startswith("f:"):
        return child_node(node, key[2:])
    if isinstance(node, AssocList) and key.startswith("k:"):
        return node.element
    return ATOMIC


def subtract_recursive(paths: FieldSet, ignored: FieldSet) -> FieldSet:
    """Drop paths equal to or below any ignored path (`RecursiveDifference`)."""
    if not ignored:
        return set(paths)
    kept = set()
    for path in paths:
        if any(path[: len(prefix)] == prefix for prefix in ignored):
            continue
        kept.add(path)
    return kept


def to_fields_v1(paths: FieldSet) -> dict[str, Any]:
    """Encode a field set as FieldsV1: nested keys, `.` where a member has children."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path:
            node = node.setdefault(key, {})
    return _mark_members(tree, (), paths)


def _mark_members(tree: dict[str, Any], prefix: Path, paths: FieldSet) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if prefix and prefix in paths and tree:
        result["."] = {}
    for key in sorted(tree, key=_key_order):
        result[key] = _mark_members(tree[key], prefix + (key,), paths)
    return result


def _key_order(key: str) -> tuple[int, str]:
    return ("fkvi".find(key[0]) if key[:1] else 9, key)


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> FieldSet:
    """Decode FieldsV1 into a field set; raise ValueError on a malformed key."""
    if not isinstance(tree, dict):
        raise ValueError(f"expected an object at {path_string(prefix) or '.'}")
    result: FieldSet = set()
    if prefix and (not tree or "." in tree):
        result.add(prefix)
    for key, child in tree.items():
        if key == ".":
            continue
        if key[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"unexpected field key {key!r}")
        result |= from_fields_v1(child, prefix + (key,))
    return result


def path_string(path: Path) -> str:
    """Format a path the way structured-merge-diff prints it: `.data.foo`, `[uid="x"]`."""
    parts = []
    for key in path:
        kind, text = key[:2], key[2:]
        if kind == "f:":
            parts.append("." + text)
        elif kind == "k:":
            pairs = json.loads(text)
            inner = ",".join(f"{name}={json.dumps(value)}" for name, value in pairs.items())
            parts.append(f"[{inner}]")
        elif kind == "v:":
            parts.append(f"[={text}]")
        else:
            parts.append(f"[{text}]")
    return "".join(parts)
