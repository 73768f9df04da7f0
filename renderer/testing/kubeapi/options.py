"""Query parameters of writes: `dryRun`, `fieldManager`, `fieldValidation`, `force`.

Invalid values get the response the real server sends: a 422 about a
`CreateOptions`, `UpdateOptions`, `PatchOptions` or `DeleteOptions` object of the
`meta.k8s.io` group.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .errors import FieldError
from .protocol import Request

FIELD_VALIDATION = ("Ignore", "Strict", "Warn")
MAX_MANAGER_LENGTH = 128


@dataclass
class WriteOptions:
    dry_run: bool
    manager: str
    field_validation: str
    force: bool


def dry_run_errors(request: Request) -> list[FieldError]:
    values = request.query.get("dryRun", [])
    if all(value == "All" for value in values):
        return []
    listed = ", ".join(f'"{value}"' for value in values)
    return [
        FieldError("Unsupported value", "dryRun", 'supported values: "All"', None).with_raw(
            f"[]string{{{listed}}}"
        )
    ]


def write_options(request: Request, kind: str, *, apply: bool = False) -> WriteOptions:
    """Parse and check the options of a create, update or patch."""
    found = dry_run_errors(request)
    manager = request.param("fieldManager")
    if apply and not manager:
        found.append(FieldError("Required value", "fieldManager", "is required for apply patch"))
    if len(manager) > MAX_MANAGER_LENGTH:
        found.append(
            FieldError("Too long", "fieldManager", f"may not be longer than {MAX_MANAGER_LENGTH}")
        )
    if manager and not manager.isprintable():
        detail = "must only contain printable characters"
        found.append(FieldError("Invalid value", "fieldManager", detail, manager))
    directive = request.param("fieldValidation")
    if directive and directive not in FIELD_VALIDATION:
        supported = 'supported values: "", "Ignore", "Strict", "Warn"'
        found.append(FieldError("Unsupported value", "fieldValidation", supported, directive))
    force = request.param("force")
    if force and not apply:
        found.append(FieldError("Forbidden", "force", "may not be specified for non-apply patch"))
    if found:
        raise errors.invalid(kind, "", found, "meta.k8s.io")
    return WriteOptions(
        dry_run=bool(request.query.get("dryRun")),
        manager=manager or default_manager(request.user_agent),
        field_validation=directive or "Warn",
        force=force.lower() in ("true", "1"),
    )


def default_manager(user_agent: str) -> str:
    """Name the manager of a write without `fieldManager` after its User-Agent.

    The server keeps the part before the first `/`, so `kubectl/v1.32.4 (...)` becomes
    `kubectl` and the Python client's `OpenAPI-Generator/37.0.1/python` becomes
    `OpenAPI-Generator`.
    """
    return user_agent.split("/", 1)[0][:MAX_MANAGER_LENGTH]
