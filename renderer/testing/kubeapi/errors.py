"""Status objects for failed requests, worded the way kube-apiserver words them.

Each constructor returns an `ApiError` whose `status` is the `Status` body the real
server sends: `reason`, `code`, `message` and `details` (with `causes` for validation
errors and apply conflicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cause:
    """One entry of `details.causes`: a field path, a reason and a message."""

    reason: str
    message: str
    field: str = ""

    def as_dict(self) -> dict[str, str]:
        cause = {"reason": self.reason, "message": self.message}
        if self.field:
            cause["field"] = self.field
        return cause


@dataclass
class FieldError:
    """A validation error on one field, like apimachinery's `field.Error`."""

    kind: str
    path: str
    detail: str = ""
    value: Any = None
    raw: str | None = None

    # Causes use the same wording as `field.ErrorType`.
    CAUSE_REASONS = {
        "Invalid value": "FieldValueInvalid",
        "Required value": "FieldValueRequired",
        "Forbidden": "FieldValueForbidden",
        "Too long": "FieldValueTooLong",
        "Unsupported value": "FieldValueNotSupported",
        "Duplicate value": "FieldValueDuplicate",
        "Too many": "FieldValueTooMany",
    }

    def body(self) -> str:
        """Return the message without the field path, as `causes[].message` contains it."""
        if self.kind in ("Invalid value", "Unsupported value", "Duplicate value"):
            shown = self.raw if self.raw is not None else format_value(self.value)
            text = f"{self.kind}: {shown}"
        else:
            text = self.kind
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def message(self) -> str:
        return f"{self.path}: {self.body()}"

    def with_raw(self, shown: str) -> FieldError:
        """Show the bad value as given (Go syntax for a list, say) instead of formatting it."""
        self.raw = shown
        return self

    def cause(self) -> Cause:
        return Cause(self.CAUSE_REASONS.get(self.kind, "FieldValueInvalid"), self.body(), self.path)


def format_value(value: Any) -> str:
    """Format a bad value the way Go's `%#v` shows strings, numbers and nil."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


@dataclass
class ApiError(Exception):
    """A failed request, carried up to the HTTP layer as a `Status` object."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    @property
    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    message = f'{_qualified(resource, group)} "{name}" not found'
    return ApiError(404, "NotFound", message, _details(name, resource, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    message = f'{_qualified(resource, group)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(name, resource, group))


def conflict(resource: str, name: str, reason: str, group: str = "") -> ApiError:
    message = f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {reason}'
    return ApiError(409, "Conflict", message, _details(name, resource, group))


def uid_precondition_failed(
    resource: str, name: str, wanted: str, actual: str, group: str = ""
) -> ApiError:
    reason = f"Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
    return conflict(resource, name, reason, group)


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """Build a 422 like `errors.NewInvalid`: one message, one cause per field error."""
    qualified_kind = f"{kind}.{group}" if group else kind
    if len(errors) == 1:
        summary = errors[0].message()
    else:
        summary = "[" + ", ".join(error.message() for error in errors) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [error.cause().as_dict() for error in errors]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(resource: str, name: str, reason: str, group: str = "") -> ApiError:
    message = f'{_qualified(resource, group)} "{name}" is forbidden: {reason}'
    return ApiError(403, "Forbidden", message, _details(name, resource, group))


def method_not_allowed(method: str) -> ApiError:
    message = f"the server does not allow this method on the requested resource ({method})"
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str, supported: list[str]) -> ApiError:
    message = (
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(supported)}"
    )
    if content_type:
        message = f"{message} (got {content_type})"
    return ApiError(415, "UnsupportedMediaType", message, {})


def not_acceptable(accept: str) -> ApiError:
    message = f"only the following media types are accepted: application/json (got {accept})"
    return ApiError(406, "NotAcceptable", message, {})


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def too_many_requests(retry_after: int) -> ApiError:
    """Build the 429 that API priority and fairness sends when a queue is full."""
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def internal_error(message: str) -> ApiError:
    text = f"Internal error occurred: {message}"
    return ApiError(500, "InternalError", text, {"causes": [{"message": message}]})


def apply_conflict(conflicts: list[tuple[str, str]]) -> ApiError:
    """Build the 409 of a server-side apply that would take fields from other managers.

    `conflicts` contains (manager description, field path) pairs, already sorted.
    """
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path}
        for who, path in conflicts
    ]
    if len(conflicts) == 1:
        who, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path}"
    else:
        lines: list[str] = []
        previous = None
        for who, path in conflicts:
            if who != previous:
                lines.append(f"conflicts with {who}:")
                previous = who
            lines.append(f"- {path}")
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
