"""The External Secrets webhook provider: `GET /v1/secrets/{namespace}/{name}`.

External Secrets Operator's webhook provider fetches one JSON object per ExternalSecret and,
with `dataFrom.extract` and `jsonPath: "$"`, turns each member into a key of the target
Secret. This endpoint returns that object for one Secret of the table: KEY to plaintext
value, as the last sync decrypted it. It is the one answer of kubestash that carries secret
values, so it exists only when WEBHOOK_TOKEN is set and every call must present that token
as `Authorization: Bearer TOKEN`. Keys that failed to decrypt are left out and named in the
`X-Kubestash-Failed-Keys` header, so a partial answer is never mistaken for the whole Secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from renderer.names import SecretRef
from renderer.settings import DNS1123_LABEL, Settings

logger = logging.getLogger(__name__)

DesiredGetter = Callable[[], Mapping[SecretRef, Any]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _decode_values(data: Mapping[str, str]) -> dict[str, str] | None:
    values: dict[str, str] = {}
    for key, encoded in data.items():
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return values


def webhook_route(settings: Settings, desired: DesiredGetter) -> Route:
    """Return the route; every call gets 404 while WEBHOOK_TOKEN is unset."""
    expected = (settings.webhook_token or "").encode()

    async def secret_values(request: Request) -> Response:
        namespace = request.path_params["namespace"]
        name = request.path_params["name"]
        if not expected:
            return _error(404, "the External Secrets webhook is off; set WEBHOOK_TOKEN to use it")

        token = _bearer_token(request)
        if token is None:
            return _error(
                401,
                "missing token; send 'Authorization: Bearer <WEBHOOK_TOKEN>'",
                {"WWW-Authenticate": 'Bearer realm="kubestash"'},
            )
        if not hmac.compare_digest(token.encode(), expected):
            logger.warning("webhook call for %s/%s with a wrong token", namespace, name)
            return _error(403, "wrong token for the External Secrets webhook")

        if not DNS1123_LABEL.match(namespace):
            return _error(404, f"namespace {namespace!r} is not a valid namespace name")
        if namespace in settings.namespace_exclude:
            return _error(403, f"namespace {namespace!r} is excluded by NAMESPACE_EXCLUDE_FILTER")

        secret = desired().get(SecretRef(namespace, name))
        if secret is None:
            return _error(404, f"the table has no Secret {namespace}/{name}")
        values = _decode_values(secret.data)
        if values is None:
            logger.error("Secret %s/%s has a value that is not UTF-8 text", namespace, name)
            return _error(500, f"Secret {namespace}/{name} has a value that is not UTF-8 text")

        headers = {"Cache-Control": "no-store"}
        if secret.failed:
            headers["X-Kubestash-Failed-Keys"] = ",".join(sorted(secret.failed))
        logger.info("webhook served %s/%s with %d keys", namespace, name, len(values))
        return JSONResponse(values, headers=headers)

    return Route("/v1/secrets/{namespace}/{name}", secret_values, methods=["GET"])
