"""JSON patch, JSON merge patch and strategic merge patch on plain JSON objects.

JSON patch (RFC 6902) uses the `jsonpatch` package. Merge patch follows RFC 7386.
Strategic merge patch follows the Kubernetes rules for the fields these kinds have.
Maps merge and `null` deletes a key. Lists with a merge key (ownerReferences by `uid`)
merge per item. Lists of scalars with the merge strategy (finalizers) merge as sets.
The directives `$patch` (replace, delete, merge), `$retainKeys`,
`$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are understood.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .fieldpath import AssocList, MapOf, SetList, Struct, child_node


class PatchError(ValueError):
    """A patch that cannot be applied to the object."""


def apply_json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(operations)
        return patch.apply(document)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise PatchError(str(error)) from None
    except (KeyError, TypeError, IndexError) as error:
        raise PatchError(f"invalid JSON patch: {error}") from None


def apply_merge_patch(document: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_patch(document: Any, patch: Any, node: Any) -> Any:
    """Apply a strategic merge patch to `document`, guided by the schema `node`."""
    if not isinstance(patch, dict):
        raise PatchError("unable to find api field in struct for the patch")
    return _merge_map(document if isinstance(document, dict) else {}, patch, node)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], node: Any) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {key: value for key, value in patch.items() if key != "$patch"}
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}")

    result = dict(original)
    retain = patch.get("$retainKeys")
    if retain is not None:
        result = {key: value for key, value in result.items() if key in retain}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            kept = [item for item in result.get(name) or [] if item not in value]
            result[name] = kept
            continue
        result = _merge_field(result, key, value, child_node(node, key))
    return result


def _merge_field(result: dict[str, Any], key: str, value: Any, node: Any) -> dict[str, Any]:
    if value is None:
        result.pop(key, None)
        return result
    current = result.get(key)
    if isinstance(value, dict) and isinstance(node, (Struct, MapOf)) and not _atomic(node):
        merged = _merge_map(current if isinstance(current, dict) else {}, value, node)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
        return result
    if isinstance(value, list) and isinstance(node, AssocList):
        result[key] = _merge_keyed_list(current or [], value, node)
        return result
    if isinstance(value, list) and isinstance(node, SetList):
        result[key] = _merge_primitive_list(current or [], value)
        return result
    result[key] = copy.deepcopy(value)
    return result


def _atomic(node: Any) -> bool:
    return isinstance(node, Struct) and node.atomic


def _merge_keyed_list(original: list[Any], patch: list[Any], node: AssocList) -> list[Any]:
    merge_key = node.keys[0]
    result = [dict(item) for item in original if isinstance(item, dict)]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        position = next(
            (i for i, old in enumerate(result) if old.get(merge_key) == item[merge_key]), None
        )
        directive = item.get("$patch")
        if directive == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            result[position] = _merge_map(result[position], item, node.element)
    return result


def _merge_primitive_list(original: list[Any], patch: list[Any]) -> list[Any]:
    result = list(original)
    for item in patch:
        if item not in result:
            result.append(item)
    return result
