"""The HTTP server: keep-alive HTTP/1.1 on 127.0.0.1, one thread per connection.

It is built on the standard library's `ThreadingHTTPServer` rather than an ASGI stack.
The fault switch needs the raw socket to drop a connection or hold it without a
response, and a watch is simplest as a blocking chunked stream.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from . import discovery, errors
from .api import Api
from .control import handle_control
from .faults import FaultRule, Faults
from .protocol import Request, Response, json_response, status_response

logger = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024
CONTROL_PREFIX = "/_"


class RequestRecord(NamedTuple):
    """One resource request in RBAC terms, with the HTTP status of its response."""

    verb: str
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # One write per response plus no Nagle delay keeps keep-alive round trips short.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        request = Request.build(self.command, self.path, dict(self.headers.items()), body or b"")
        if body is None:
            self.close_connection = True
            self.write_response(request, status_response(errors.too_large(MAX_BODY)))
            return
        self.server.owner.serve(self, request)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def write_response(self, request: Request, response: Response) -> None:
        if response.stream is not None:
            self._send_stream(response.code, response.headers, response.stream)
            return
        payload = b"" if request.method == "HEAD" else response.payload()
        length = len(response.payload()) if request.method == "HEAD" else len(payload)
        head = self._head(response.code, response.headers, {"Content-Length": str(length)})
        self.wfile.write(head + payload)

    def _head(self, code: int, headers: dict[str, str], extra: dict[str, str]) -> bytes:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {code} {phrase}"]
        merged = {
            "Audit-Id": str(uuid.uuid4()),
            "Cache-Control": "no-cache, private",
            "Date": self.date_time_string(),
            **headers,
            **extra,
        }
        if self.close_connection:
            merged["Connection"] = "close"
        lines += [f"{name}: {value}" for name, value in merged.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_stream(self, code: int, headers: dict[str, str], chunks: Iterator[bytes]) -> None:
        self.wfile.write(self._head(code, headers, {"Transfer-Encoding": "chunked"}))
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    def drop(self) -> None:
        """Close the connection without a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: KubeAPIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response (a timeout, a dropped watch) is normal here.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class KubeAPIServer:
    """A Kubernetes API test server; see the package docstring for what it serves."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        history_size: int = 50_000,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.api = Api(history_size=history_size, bookmark_interval=bookmark_interval)
        self.faults = Faults()
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """The resource requests served since the start or the last reset, oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def start(self) -> KubeAPIServer:
        self._http = _HTTPServer((self.host, self.port), _Handler)
        self._http.owner = self
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="kubeapi-server", daemon=True
        )
        self._thread.start()
        logger.debug("Kubernetes API test server listening on %s", self.url)
        return self

    def stop(self) -> None:
        self.api.store.close()
        self.faults.clear()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        logger.debug("Kubernetes API test server on %s stopped", self.url)

    def reset(self) -> None:
        """Drop all objects, fault rules and logged requests; keep serving."""
        self.faults.clear()
        self.api.reset()
        self.clear_requests()

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        name = "kubeapi-test"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": "kubeapi-test-token"}}],
            "contexts": [
                {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
            ],
            "current-context": name,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for kubectl and the Python client; return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace=namespace), sort_keys=False))
        return target

    def serve(self, handler: _Handler, request: Request) -> None:
        """Serve one request: control endpoints, then faults, then the API."""
        if request.path.startswith(CONTROL_PREFIX):
            handler.write_response(request, self._control(request))
            return
        target = self.api.resolve(request)
        verb = target.verb if target else _plain_verb(request.method)
        rule = self.faults.take(verb, request.method, request.path)
        if rule is not None and self._inject(handler, request, rule):
            if target is not None:
                self._record(target, rule.status if rule.action == "status" else 0)
            return
        try:
            if target is None:
                response = self._non_resource(request)
            else:
                response = self.api.handle(target, request)
        except Exception as error:  # noqa: BLE001 - a bug here must still answer a Status
            logger.exception("request %s %s failed", request.method, request.path)
            response = status_response(errors.internal_error(type(error).__name__))
        if target is not None:
            self._record(target, response.code)
        handler.write_response(request, response)

    def _record(self, target: Any, code: int) -> None:
        resource = target.resource
        entry = RequestRecord(
            target.verb,
            resource.group,
            resource.plural,
            target.subresource,
            target.namespace,
            target.name,
            code,
        )
        with self._log_lock:
            self._log.append(entry)

    def _inject(self, handler: _Handler, request: Request, rule: FaultRule) -> bool:
        """Carry out a fault; return True when it took the place of the response."""
        logger.debug(
            "fault rule %d (%s) hit %s %s", rule.id, rule.action, request.method, request.path
        )
        if rule.action == "delay":
            time.sleep(rule.delay_seconds or 0)
            return False
        if rule.action == "status":
            handler.write_response(request, status_response(_fault_error(rule)))
            return True
        if rule.action == "hang":
            self.faults.released.wait(rule.delay_seconds)
        handler.drop()
        return True

    def _non_resource(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return status_response(errors.page_not_found())
        resources = self.api.resources
        path = request.path.rstrip("/") or "/"
        parts = [part for part in path.split("/") if part]
        body: Any = None
        if path == "/version":
            body = discovery.VERSION_INFO
        elif path == "/api":
            body = discovery.api_versions(f"{self.host}:{self.port}")
        elif path == "/apis":
            body = discovery.group_list(resources)
        elif len(parts) == 2 and parts[0] == "api":
            body = discovery.resource_list(resources, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            body = discovery.group(resources, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = discovery.resource_list(resources, parts[1], parts[2])
        elif path == "/openapi/v3":
            body = discovery.openapi_root(resources)
        elif path.startswith("/openapi/v3/"):
            body = discovery.openapi_for_path(resources, path[len("/openapi/v3/") :])
        elif path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", {"Content-Type": "text/plain; charset=utf-8"})
        if body is None:
            return status_response(errors.page_not_found())
        return json_response(200, body)

    def _control(self, request: Request) -> Response:
        return handle_control(self, request)


def _plain_verb(method: str) -> str:
    return {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update"}.get(
        method, method.lower()
    )


def _fault_error(rule: FaultRule) -> errors.ApiError:
    if rule.status == 429:
        error = errors.too_many_requests(rule.retry_after_seconds or 1)
    else:
        reasons = {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            405: "MethodNotAllowed",
            409: "Conflict",
            410: "Expired",
            413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType",
            422: "Invalid",
            500: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
        }
        message = rule.message or f"injected fault (rule {rule.id})"
        error = errors.ApiError(rule.status, reasons.get(rule.status, "Unknown"), message, {})
        if rule.retry_after_seconds is not None:
            error.headers["Retry-After"] = str(rule.retry_after_seconds)
            error.details = {"retryAfterSeconds": rule.retry_after_seconds}
    if rule.message:
        error.message = rule.message
    return error
