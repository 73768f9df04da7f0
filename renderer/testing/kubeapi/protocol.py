"""Requests and responses as the API handlers see them, and the JSON response helpers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from . import errors


@dataclass
class Request:
    """One HTTP request, parsed for the API."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Request:
        path, _, query = target.partition("?")
        lowered = {name.lower(): value for name, value in headers.items()}
        return cls(method, path, parse_qs(query, keep_blank_values=True), lowered, body)

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return self.param(name).lower() in ("true", "1")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")


@dataclass
class Response:
    """A complete response, or a stream of chunks for a watch."""

    code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode()


def status_response(error: errors.ApiError) -> Response:
    headers = {"Content-Type": "application/json", **error.headers}
    return Response(error.code, error.status, headers)


def json_response(code: int, body: Any, warnings: list[str] | None = None) -> Response:
    headers = {"Content-Type": "application/json"}
    if warnings:
        quoted = ", ".join('299 - "{}"'.format(text.replace('"', '\\"')) for text in warnings)
        headers["Warning"] = quoted
    return Response(code, body, headers)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())
