"""The fault switch: rules that delay, fail, drop or hang matching requests.

A rule matches on the RBAC verb (or "*"), an optional HTTP method and a regular
expression searched in the request path. It fires for `count` requests, for
`window_seconds` from the moment it is added, or both (whichever ends first), or
until cleared. The first active matching rule, in the order added, decides.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("delay", "status", "drop", "hang")
RULE_FIELDS = {
    "verb",
    "method",
    "path",
    "action",
    "status",
    "retry_after_seconds",
    "delay_seconds",
    "count",
    "window_seconds",
    "message",
}


class FaultRuleError(ValueError):
    """A fault rule that cannot be used; the message names the field."""


@dataclass
class FaultRule:
    """One rule of the fault switch."""

    action: str
    verb: str = "*"
    method: str = ""
    path: str = ""
    status: int = 500
    retry_after_seconds: int | None = None
    delay_seconds: float | None = None
    count: int | None = None
    window_seconds: float | None = None
    message: str = ""
    id: int = 0
    hits: int = 0
    added_at: float = field(default_factory=time.monotonic)

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise FaultRuleError("a fault rule must be a JSON object")
        unknown = sorted(set(data) - RULE_FIELDS)
        if unknown:
            raise FaultRuleError(f"unknown fault rule field(s): {', '.join(unknown)}")
        action = data.get("action")
        if action not in ACTIONS:
            raise FaultRuleError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        rule = cls(action=action)

        rule.verb = str(data.get("verb") or "*")
        rule.method = str(data.get("method") or "").upper()
        rule.path = str(data.get("path") or "")
        rule.message = str(data.get("message") or "")
        try:
            re.compile(rule.path)
        except re.error as error:
            message = f"path {rule.path!r} is not a valid regular expression: {error}"
            raise FaultRuleError(message) from None

        rule.status = _number(data, "status", int, 500)
        if not 100 <= rule.status <= 599:
            raise FaultRuleError(f"status {rule.status} is not an HTTP status code")
        rule.retry_after_seconds = _optional(data, "retry_after_seconds", int)
        rule.delay_seconds = _optional(data, "delay_seconds", float)
        rule.count = _optional(data, "count", int)
        rule.window_seconds = _optional(data, "window_seconds", float)

        if action == "delay" and rule.delay_seconds is None:
            raise FaultRuleError("action 'delay' needs delay_seconds")
        if action == "status" and rule.status == 429 and rule.retry_after_seconds is None:
            rule.retry_after_seconds = 1
        return rule

    def active(self, now: float) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        if self.window_seconds is not None and now - self.added_at > self.window_seconds:
            return False
        return True

    def matches(self, verb: str, method: str, path: str) -> bool:
        if self.verb not in ("*", verb):
            return False
        if self.method and self.method != method:
            return False
        return not self.path or re.search(self.path, path) is not None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"id": self.id, "action": self.action, "verb": self.verb}
        for name in ("method", "path", "message"):
            if getattr(self, name):
                result[name] = getattr(self, name)
        if self.action == "status":
            result["status"] = self.status
        for name in ("retry_after_seconds", "delay_seconds", "count", "window_seconds"):
            if getattr(self, name) is not None:
                result[name] = getattr(self, name)
        result["hits"] = self.hits
        result["active"] = self.active(time.monotonic())
        return result


def _number(data: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultRuleError(f"{name} must be a number, not {value!r}")
    if value < 0:
        raise FaultRuleError(f"{name} must not be negative, got {value}")
    return kind(value)


def _optional(data: dict[str, Any], name: str, kind: type) -> Any:
    if data.get(name) is None:
        return None
    return _number(data, name, kind, None)


class Faults:
    """The set of fault rules; safe to use from many request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self.released = threading.Event()

    def add(self, rule: FaultRule | dict[str, Any]) -> FaultRule:
        """Add a rule (a FaultRule or its JSON form) and return it with its id."""
        if not isinstance(rule, FaultRule):
            rule = FaultRule.from_dict(rule)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            rule.added_at = time.monotonic()
            self._rules.append(rule)
            self.released.clear()
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Remove every rule and let requests held by `hang` go."""
        with self._lock:
            self._rules = []
            self.released.set()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, verb: str, method: str, path: str) -> FaultRule | None:
        """Return the rule that fires for this request, counting the hit."""
        now = time.monotonic()
        with self._lock:
            for rule in self._rules:
                if rule.active(now) and rule.matches(verb, method, path):
                    rule.hits += 1
                    return rule
        return None


def parse_rules(body: bytes) -> list[FaultRule]:
    """Parse the body of `POST /_faults`: one rule object or a list of them."""
    try:
        data = json.loads(body or b"null")
    except ValueError as error:
        raise FaultRuleError(f"the fault rule is not valid JSON: {error}") from None
    items = data if isinstance(data, list) else [data]
    return [FaultRule.from_dict(item) for item in items]
