"""The HTML status page served at `GET /`.

One Jinja2 template (`templates/status.html.j2`) with autoescaping on, inline CSS and no
external assets, so it works offline and in clusters without internet access. It reloads
itself every 15 seconds. It shows names, counts and states, never a secret value: the
context it receives holds no values.

The page context is a dict:

    env, cluster_name        labels of this kubestash process
    dry_run                  bool; a banner says that nothing is written
    generated_at             RFC 3339 UTC time of the rendering
    ready                    bool, as /readyz reports it
    leader                   {"enabled", "is_leader", "holder", "identity", "lease"} or None
    running                  the sync in flight: {"sync_id", "trigger", "kind", "step",
                             "running_seconds"} or None
    next_full_sync_in_seconds, pending_secrets
                             the scheduler's plan: seconds or None, ["namespace/name", ...]
    syncs                    recent sync summaries, newest first: {"sync_id", "trigger",
                             "kind", "result", "started_at", "seconds", "counts",
                             "error", "dry_run"}
    stream                   {"enabled", "stream_arn", "positioned", "shards": [{"shard_id",
                             "status", "sequence_number", "lag_seconds", "records",
                             "restarts", "last_error"}]} or None
    managed_secrets, managed_keys
                             counts from the desired state
    drift                    DriftMonitor.snapshot(): {"watching", "drifting_keys", "repairs",
                             "secrets": [{"namespace", "name", "keys": [{"key", "reason"}],
                             "managers", "repair"}], "failed": [...], ...} or None
    problems                 rows of the drift and failure table (built by build_context)
    preview                  per-Secret dry-run preview: [{"namespace", "name", "action",
                             "keys_added", "keys_changed", "keys_removed"}] or None

`build_context(status, drift)` builds it from the /status JSON and a drift snapshot;
`status_page_route(get_context)` is the Starlette route that serves it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from renderer import templates_dir

TEMPLATE = "status.html.j2"
REFRESH_SECONDS = 15
# The page loads nothing from anywhere: inline styles only, no scripts, no images.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"

ContextGetter = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["seconds"] = format_seconds
    return environment


def render_status_page(context: Mapping[str, Any]) -> str:
    """Render the status page from a page context (see the module docstring)."""
    values = {"refresh_seconds": REFRESH_SECONDS, **context}
    return _environment().get_template(TEMPLATE).render(values)


def status_page_route(get_context: ContextGetter, path: str = "/") -> Route:
    """Return a GET route serving the page; `get_context` may be sync or async."""

    async def status_page(request: Request) -> HTMLResponse:
        context = get_context()
        if inspect.isawaitable(context):
            context = await context
        headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(render_status_page(context), headers=headers)

    return Route(path, status_page, methods=["GET"], name="status_page")


def build_context(
    status: Mapping[str, Any], drift: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the page context from the /status JSON and a DriftMonitor snapshot.

    `status` is Service.status(): env, cluster_name, dry_run, ready, leader, `syncs` (the
    scheduler's status with its `history` of sync summaries, oldest first) and `stream`. The
    drift snapshot comes from `drift`, else from a "drift" entry of `status`.
    """
    scheduler = status.get("syncs") or {}
    history = list(scheduler.get("history") or [])
    syncs = [_sync_row(summary) for summary in reversed(history)]
    if drift is None:
        drift = status.get("drift")
    managed = (drift or {}).get("managed") or {}
    return {
        "env": status.get("env", ""),
        "cluster_name": status.get("cluster_name", ""),
        "dry_run": bool(status.get("dry_run")),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ready": bool(status.get("ready")),
        "leader": status.get("leader"),
        "running": scheduler.get("running"),
        "next_full_sync_in_seconds": scheduler.get("next_full_sync_in_seconds"),
        "pending_secrets": scheduler.get("pending_secrets") or [],
        "syncs": syncs,
        "stream": status.get("stream"),
        "managed_secrets": managed.get("secrets"),
        "managed_keys": managed.get("keys"),
        "drift": drift,
        "problems": problem_rows(drift or {}, syncs),
        "preview": _latest_preview(history) if status.get("dry_run") else None,
    }


def problem_rows(drift: Mapping[str, Any], syncs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Rows of drifting and failed keys and of failed or skipped Secrets, sorted by name.

    `syncs` are sync summaries, newest first. Secret outcomes come from the newest summary
    that mentions each Secret, back to the newest full sync.
    """
    rows: list[dict[str, Any]] = []
    for secret in drift.get("secrets") or ():
        for key in secret.get("keys") or ():
            detail = _join(key.get("reason"), _managers(secret), secret.get("repair"))
            rows.append(_row(secret, key["key"], "drift", detail))
    for secret in drift.get("failed") or ():
        for key in secret.get("keys") or ():
            rows.append(_row(secret, key["key"], "failed", key.get("reason") or ""))
    for outcome in _latest_outcomes(syncs):
        status = outcome.get("status") or "failed"
        if status in ("failed", "skipped", "not-applied") or outcome.get("error"):
            rows.append(_row(outcome, "", status, outcome.get("error") or ""))
    rows.sort(key=lambda row: (row["namespace"], row["name"], row["key"], row["state"]))
    return rows


def _row(secret: Mapping[str, Any], key: str, state: str, detail: str) -> dict[str, Any]:
    return {
        "namespace": secret.get("namespace", ""),
        "name": secret.get("name", ""),
        "key": key,
        "state": state,
        "detail": detail,
    }


def _latest_outcomes(syncs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    outcomes: dict[tuple[str, str], Mapping[str, Any]] = {}
    for summary in syncs:
        for outcome in summary.get("secrets") or ():
            ref = (outcome.get("namespace", ""), outcome.get("name", ""))
            outcomes.setdefault(ref, outcome)
        if summary.get("kind") == "full":
            break
    return list(outcomes.values())


def format_seconds(value: Any) -> str:
    """Format a duration in seconds for people: 0.42 s, 12 s, 3 min 5 s, 2 h 10 min."""
    if value is None or value == "":
        return "-"
    seconds = float(value)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _sync_row(summary: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(summary)
    if row.get("duration_seconds") is None:
        row["duration_seconds"] = summary.get("seconds")
    if row.get("duration_seconds") is None:
        row["duration_seconds"] = _duration(summary.get("started_at"), summary.get("finished_at"))
    counts = summary.get("counts") or {}
    row["counts"] = {k: v for k, v in counts.items() if isinstance(v, int | float) and v}
    return row


def _duration(started: Any, finished: Any) -> float | None:
    try:
        start = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


def _latest_preview(history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    for summary in reversed(list(history)):
        preview = summary.get("preview")
        if preview is None:
            continue
        if isinstance(preview, Mapping):
            preview = preview.get("secrets") or []
        return [dict(entry) for entry in preview]
    return None


def _managers(secret: Mapping[str, Any]) -> str:
    managers = secret.get("managers") or []
    return f"field manager {', '.join(managers)}" if managers else ""


def _join(*parts: Any) -> str:
    return "; ".join(str(part) for part in parts if part)
