"""Label and field selectors of list, watch and deletecollection requests.

Label selectors take `=`, `==`, `!=`, `in (...)`, `notin (...)`, `key` (exists),
`!key` (does not exist), `>` and `<`, joined by commas. Field selectors take `=`, `==`
and `!=` on the field labels each resource declares; values escape `,`, `=` and `\\`
with a backslash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .validation import label_value, qualified_name


class SelectorError(ValueError):
    """A selector that does not parse, which the server rejects with 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "==", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present:
            return False
        try:
            number = int(value or "")
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.operator == ">" else number < limit


_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_BINARY_RE = re.compile(r"^\s*([^\s!=<>,()]+)\s*(==|=|!=|>|<)\s*([^\s,()]*)\s*$")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    requirements = []
    for part in _split_requirements(text or ""):
        requirements.append(_parse_requirement(part))
    return requirements


def _parse_requirement(part: str) -> Requirement:
    binary = _BINARY_RE.match(part)
    if binary:
        key, operator, value = binary.groups()
        _check_key(key)
        if operator in (">", "<"):
            if not re.fullmatch(r"-?\d+", value):
                raise SelectorError(
                    f"unable to parse requirement: for '{operator}', '{key}' requires an integer "
                    f"value, got {value!r}"
                )
        else:
            _check_value(value)
        return Requirement(key, operator, (value,))
    matched = _SET_RE.match(part)
    if not matched:
        raise SelectorError(
            f"unable to parse requirement: found '{part.strip()}', expected: ',' or 'end of string'"
        )
    negated, key, operator, values = matched.groups()
    _check_key(key)
    if operator:
        if negated:
            raise SelectorError(f"unable to parse requirement: found '{operator}', expected: ','")
        items = tuple(item.strip() for item in values.split(",")) if values.strip() else ()
        if not items:
            raise SelectorError(
                f"unable to parse requirement: for '{operator}' operator, values set can't be empty"
            )
        for item in items:
            _check_value(item)
        return Requirement(key, operator, items)
    return Requirement(key, "!" if negated else "exists")


def _check_key(key: str) -> None:
    problems = qualified_name(key)
    if problems:
        raise SelectorError(
            f'unable to parse requirement: key: Invalid value: "{key}": {problems[0]}'
        )


def _check_value(value: str) -> None:
    problems = label_value(value)
    if problems:
        detail = f'values[0][{value}]: Invalid value: "{value}": {problems[0]}'
        raise SelectorError(f"unable to parse requirement: {detail}")


def labels_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    if not requirements:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str
    value: str


def _split_escaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str, supported: tuple[str, ...]) -> list[FieldRequirement]:
    requirements = []
    for part in _split_escaped(text or "", ","):
        if not part.strip():
            continue
        requirement = _parse_field_requirement(part)
        if requirement.field not in supported:
            raise SelectorError(f"field label not supported: {requirement.field}")
        requirements.append(requirement)
    return requirements


def _parse_field_requirement(part: str) -> FieldRequirement:
    for operator in ("!=", "==", "="):
        pieces = _split_on_operator(part, operator)
        if pieces:
            name, value = pieces
            return FieldRequirement(name.strip(), operator, _unescape(value))
    raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")


def _split_on_operator(part: str, operator: str) -> tuple[str, str] | None:
    index = 0
    while index < len(part):
        if part[index] == "\\":
            index += 2
            continue
        if part.startswith(operator, index):
            if operator == "=" and index > 0 and part[index - 1] == "!":
                return None
            return part[:index], part[index + len(operator) :]
        index += 1
    return None


def fields_match(
    requirements: list[FieldRequirement],
    obj: dict[str, Any],
    getters: dict[str, Callable[[dict[str, Any]], Any]],
) -> bool:
    for requirement in requirements:
        actual = _field_value(requirement.field, obj, getters)
        equal = actual == requirement.value
        if requirement.operator == "!=" and equal:
            return False
        if requirement.operator != "!=" and not equal:
            return False
    return True


def _field_value(name: str, obj: dict[str, Any], getters: dict[str, Any]) -> str:
    if name == "metadata.name":
        return obj.get("metadata", {}).get("name", "")
    if name == "metadata.namespace":
        return obj.get("metadata", {}).get("namespace", "")
    value = getters[name](obj)
    return "" if value is None else str(value)
