"""The HTTP API of service mode: sync triggers, probes, status and metrics on one port.

POST /render (and the old GET /syncnow) needs the API key, as `Authorization: Bearer KEY` or
the old `API-Key: KEY` header, compared in constant time. Calls with the right key share the
RENDER_RATE_LIMIT window; calls without it are limited per client address in a separate
window, so a flood of wrong keys cannot use up the quota of the right one. No answer carries
a secret value.

The rate limiter is a sliding window written here: it needs a few lines of memory per key,
and the usual library for it would add a dependency with an expiry thread of its own.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from renderer import metrics
from renderer.page import build_context, status_page_route
from renderer.settings import RateLimit, SettingError, Settings, parse_bool
from renderer.webhook import webhook_route

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
RENDER_FLAGS = ("wait", "dry_run", "allow_mass_delete")
FAILED_AUTH_LIMIT = RateLimit(10, 60)
# Any other method is counted as "other", so that clients cannot create metric series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceView(Protocol):
    """What the HTTP API reads from and asks of the running service."""

    settings: Settings

    @property
    def scheduler(self) -> Any: ...

    def is_leader(self) -> bool: ...

    def leader_status(self) -> dict[str, Any]: ...

    def healthy(self) -> tuple[bool, dict[str, Any]]: ...

    def ready(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...

    def desired(self) -> Mapping[Any, Any]: ...


class SlidingWindow:
    """At most `limit.count` hits per key in any window of `limit.period_seconds`."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self._max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float | None:
        """Record one hit; return None when allowed, else the seconds until one is."""
        now = self._clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.limit.period_seconds:
            hits.popleft()

        retry_after = None
        if len(hits) >= self.limit.count:
            retry_after = hits[0] + self.limit.period_seconds - now
        else:
            hits.append(now)

        self._hits[key] = hits
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)
        return retry_after


class QueryError(ValueError):
    pass


def parse_flags(query: Any, allowed: tuple[str, ...]) -> dict[str, bool]:
    """Parse true/false query parameters; raise QueryError naming an unknown or bad one."""
    flags = dict.fromkeys(allowed, False)
    for name in query.keys():
        if name not in allowed:
            raise QueryError(f"unknown query parameter {name!r}; allowed: {', '.join(allowed)}")
        values = query.getlist(name)
        if len(values) != 1:
            raise QueryError(f"query parameter {name!r} must be given once, as true or false")
        try:
            flags[name] = parse_bool(f"query parameter {name!r}", values[0])
        except SettingError as exc:
            raise QueryError(str(exc)) from None
    return flags


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("api-key", "").strip()
    return api_key or None


class RenderAPI:
    """POST /render and GET /syncnow: authentication, limits and the sync request.

    `dry_run=true` asks for a preview and waits for it. `dry_run=false` means the configured
    DRY_RUN, so that an API call can never turn a dry-run deployment into one that writes.
    """

    def __init__(self, service: ServiceView, failed_auth_limit: RateLimit = FAILED_AUTH_LIMIT):
        self.service = service
        settings = service.settings
        self._key = settings.api_key.encode() if settings.api_key else None
        self.accepted = SlidingWindow(settings.render_rate_limit)
        self.rejected = SlidingWindow(failed_auth_limit)

    def _authenticate(self, request: Request) -> Response | None:
        presented = _presented_key(request)
        if presented is not None and self._key is not None:
            if hmac.compare_digest(presented.encode(), self._key):
                return None

        client = request.client.host if request.client else "unknown"
        wait = self.rejected.hit(client)
        if wait is not None:
            return _error(429, "too many failed authentications", _retry_after(wait))
        if presented is None:
            headers = {"WWW-Authenticate": 'Bearer realm="kubestash"'}
            return _error(401, "missing API key: send 'Authorization: Bearer KEY'", headers)
        if self._key is None:
            return _error(403, "sync requests are turned off: KUBESTASH_API_KEY is not set")
        logger.warning("rejected a %s request from %s: wrong API key", request.url.path, client)
        return _error(403, "wrong API key")

    async def handle(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        try:
            flags = parse_flags(request.query_params, RENDER_FLAGS)
        except QueryError as error:
            return _error(400, str(error))

        if not self.service.is_leader():
            holder = self.service.leader_status().get("holder") or "unknown"
            return _error(
                503, f"this replica is a standby; the leader is {holder}", _retry_after(2)
            )
        wait = self.accepted.hit("render")
        if wait is not None:
            return _error(429, f"at most {self.accepted.limit} sync requests", _retry_after(wait))

        ticket = self.service.scheduler.request_full(
            "render",
            dry_run=True if flags["dry_run"] else None,
            allow_mass_delete=flags["allow_mass_delete"],
        )
        logger.info("sync requested through %s (request %s)", request.url.path, ticket.request_id)
        if not (flags["wait"] or flags["dry_run"]):
            body = {"request_id": ticket.request_id, "status": "accepted", "status_url": "/status"}
            return JSONResponse(body, status_code=202)
        summary = await ticket.future
        return JSONResponse({"request_id": ticket.request_id, **summary})


class RequestMetrics:
    """Count every response by route template and reject request bodies over 1 MiB."""

    def __init__(self, app: ASGIApp, routes: list[Route], max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.routes = routes
        self.max_body = max_body

    def _handler(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = self._handler(scope)
        status = {"code": 500}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if self._too_large(scope):
                response = _error(413, f"request body over {self.max_body} bytes")
                await response(scope, receive, send_counted)
            else:
                await self.app(scope, self._limited(receive), send_counted)
        finally:
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            metrics.http_requests_total.labels(handler, method, str(status["code"])).inc()

    def _too_large(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return not value.isdigit() or int(value) > self.max_body
        return False

    def _limited(self, receive: Receive) -> Receive:
        seen = {"bytes": 0}

        async def receive_limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body:
                    return {"type": "http.disconnect"}
            return message

        return receive_limited


def create_app(service: ServiceView) -> ASGIApp:
    """Build the Starlette app with every route of service mode."""
    render = RenderAPI(service)

    async def healthz(request: Request) -> Response:
        healthy, detail = service.healthy()
        return JSONResponse(
            {"status": "ok" if healthy else "failing", **detail},
            status_code=200 if healthy else 503,
        )

    async def readyz(request: Request) -> Response:
        ready, reason = service.ready()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "reason": reason},
            status_code=200 if ready else 503,
        )

    async def config(request: Request) -> Response:
        return JSONResponse(service.settings.redacted())

    async def status(request: Request) -> Response:
        return JSONResponse(service.status())

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/render", render.handle, methods=["POST"]),
        Route("/syncnow", render.handle, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/config", config, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        webhook_route(service.settings, service.desired),
        status_page_route(lambda: build_context(service.status())),
    ]
    app = Starlette(routes=routes)
    app.state.render = render
    return RequestMetrics(app, routes)
