"""Control endpoints of the test server, outside the Kubernetes API paths.

- `GET /_faults` lists the fault rules with their hits. `POST /_faults` adds one rule
  (or a list of rules) and returns them with their ids. `DELETE /_faults` removes all
  rules, and `DELETE /_faults/{id}` removes one.
- `GET /_requests` returns the request log; `DELETE /_requests` empties it.
- `POST /_reset` drops all objects, rules and logged requests.

Faults never apply to these paths, and they are not logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import FaultRuleError, parse_rules
from .protocol import Request, Response, json_response

if TYPE_CHECKING:
    from .server import KubeAPIServer


def _error(code: int, message: str) -> Response:
    return json_response(code, {"error": message})


def handle_control(server: KubeAPIServer, request: Request) -> Response:
    path = request.path.rstrip("/")
    method = request.method
    if path == "/_faults":
        return _faults(server, request)
    if path.startswith("/_faults/") and method == "DELETE":
        rule_id = path.rsplit("/", 1)[1]
        if not rule_id.isdigit() or not server.faults.remove(int(rule_id)):
            return _error(404, f"fault rule {rule_id!r} not found")
        return json_response(200, {"deleted": int(rule_id)})
    if path == "/_requests":
        if method == "DELETE":
            server.clear_requests()
            return json_response(200, {"requests": []})
        if method == "GET":
            return json_response(
                200, {"requests": [record._asdict() for record in server.requests]}
            )
    if path == "/_reset" and method == "POST":
        server.reset()
        return json_response(200, {"reset": True})
    return _error(404, f"no control endpoint {method} {request.path}")


def _faults(server: KubeAPIServer, request: Request) -> Response:
    if request.method == "GET":
        return json_response(200, {"rules": [rule.as_dict() for rule in server.faults.rules()]})
    if request.method == "DELETE":
        server.faults.clear()
        return json_response(200, {"rules": []})
    if request.method == "POST":
        try:
            rules = parse_rules(request.body)
        except FaultRuleError as error:
            return _error(400, str(error))
        added: list[dict[str, Any]] = [server.faults.add(rule).as_dict() for rule in rules]
        return json_response(201, {"rules": added})
    return _error(405, f"method {request.method} is not allowed on /_faults")
