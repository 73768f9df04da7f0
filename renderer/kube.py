"""Kubernetes API access for the sync: Secrets, Namespaces and Events as plain JSON.

Requests go through the connection pool of the official client (which carries the TLS and
token settings of the kubeconfig or the pod), but bodies stay JSON dicts: building the
client's model objects for thousands of Secrets costs more than the requests themselves.
Retries with backoff come from tenacity.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes
import urllib3
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from renderer import metrics
from renderer.names import SecretRef
from renderer.settings import Settings

logger = logging.getLogger(__name__)

FIELD_MANAGER = "kubestash"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubestash"
LIST_PAGE_SIZE = 500
MAX_ATTEMPTS = 5
MAX_RETRY_AFTER = 30.0
RETRIED_STATUS = {429, 500, 502, 503, 504}
BACKOFF = wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2)


class KubeError(Exception):
    """A Kubernetes request failed; `status` is the HTTP code (0 when no response came)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.details = dict(details or {})
        self.retry_after = retry_after

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list(self.details.get("causes") or [])


def _retryable(error: BaseException) -> bool:
    return isinstance(error, KubeError) and (error.status in RETRIED_STATUS or error.status == 0)


def _wait(state: RetryCallState) -> float:
    """Honour Retry-After on 429 and 503; otherwise back off exponentially with jitter."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, KubeError) and error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_AFTER)
    return BACKOFF(state)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "Kubernetes request failed (attempt %d of %d), retrying: %s",
        state.attempt_number,
        MAX_ATTEMPTS,
        error,
    )


def load_configuration(
    settings: Settings, *, kubeconfig: str | None = None, context: str | None = None
) -> kubernetes.client.Configuration:
    """Load the kubeconfig (KUBECONFIG or ~/.kube/config), or the in-cluster config in a pod."""
    configuration = kubernetes.client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    in_pod = "KUBERNETES_SERVICE_HOST" in os.environ
    if path or not in_pod:
        kubernetes.config.load_kube_config(
            config_file=path or os.path.expanduser("~/.kube/config"),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    # One pool connection per apply thread, so parallel applies do not wait for a socket.
    configuration.connection_pool_maxsize = max(settings.apply_workers, 4)
    return configuration


class KubeClient:
    """The Kubernetes requests of a sync, each with HTTP_TIMEOUT, retries and a metric."""

    def __init__(
        self,
        settings: Settings,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        api_client: kubernetes.client.ApiClient | None = None,
    ) -> None:
        self.settings = settings
        if api_client is None:
            configuration = load_configuration(settings, kubeconfig=kubeconfig, context=context)
            api_client = kubernetes.client.ApiClient(configuration)
        self.api_client = api_client
        self.configuration = api_client.configuration
        self._pool = api_client.rest_client.pool_manager
        self._timeout = urllib3.Timeout(total=settings.http_timeout)

    def close(self) -> None:
        self.api_client.close()

    @retry(
        retry=retry_if_exception(_retryable),
        wait=_wait,
        stop=stop_after_attempt(MAX_ATTEMPTS),
        before_sleep=_log_retry,
        reraise=True,
    )
    def request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON response; raise KubeError on failure.

        `verb` is the Kubernetes verb for the metric (list, get, patch, delete, create).
        429, 5xx and connection errors are retried up to MAX_ATTEMPTS times.
        """
        url = self.configuration.host + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "User-Agent": "kubestash"}
        auth = self.configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers[auth["key"]] = auth["value"]
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = json.dumps(body, separators=(",", ":")).encode()

        try:
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            metrics.kube_requests_total.labels(verb, "0").inc()
            raise KubeError(0, f"{method} {path}: no response ({type(exc).__name__})") from None

        metrics.kube_requests_total.labels(verb, str(response.status)).inc()
        if 200 <= response.status < 300:
            return json.loads(response.data) if response.data else {}
        raise _error_from(method, path, response)

    def list_managed_secrets(self, excluded: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """List every Secret labelled as managed by kubestash, page by page.

        Excluded namespaces are filtered by the API server (a field selector), so kubestash
        never reads Secrets there. A continue token that expired (410 Gone) restarts the list.
        """
        selector = ",".join(f"metadata.namespace!={name}" for name in sorted(excluded))
        query: dict[str, Any] = {
            "labelSelector": f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}",
            "fieldSelector": selector or None,
            "limit": LIST_PAGE_SIZE,
        }
        for _attempt in range(3):
            try:
                return self._list_pages("/api/v1/secrets", query)
            except KubeError as exc:
                if exc.status != 410:
                    raise
                logger.warning("Secret list continue token expired (410 Gone); listing again")
        return self._list_pages("/api/v1/secrets", query)

    def _list_pages(self, path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page_query = dict(query)
        while True:
            page = self.request("list", "GET", path, query=page_query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            page_query["continue"] = token

    def get_secret(self, ref: SecretRef) -> dict[str, Any] | None:
        try:
            return self.request("get", "GET", _secret_path(ref))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply_secret(self, body: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """Server-side apply one Secret as field manager kubestash, taking over conflicts."""
        metadata = body["metadata"]
        ref = SecretRef(metadata["namespace"], metadata["name"])
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": _dry_run(dry_run)}
        return self.request(
            "patch",
            "PATCH",
            _secret_path(ref),
            query=query,
            body=body,
            content_type="application/apply-patch+yaml",
        )

    def delete_secret(self, ref: SecretRef, *, resource_version: str | None, dry_run: bool) -> bool:
        """Delete a Secret if it is unchanged since `resource_version`; False if already gone.

        The precondition makes the API server return 409 instead of deleting a Secret that
        someone changed after kubestash read it.
        """
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            self.request(
                "delete",
                "DELETE",
                _secret_path(ref),
                query={"dryRun": _dry_run(dry_run)},
                body=body,
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_namespaces(self) -> set[str]:
        items = self._list_pages("/api/v1/namespaces", {"limit": LIST_PAGE_SIZE})
        return {item["metadata"]["name"] for item in items}


def _dry_run(dry_run: bool) -> str | None:
    return "All" if dry_run else None


def _secret_path(ref: SecretRef) -> str:
    return f"/api/v1/namespaces/{quote(ref.namespace)}/secrets/{quote(ref.name)}"


def _error_from(method: str, path: str, response: urllib3.BaseHTTPResponse) -> KubeError:
    """Turn a Status response into KubeError; the message carries the server's words."""
    try:
        status = json.loads(response.data)
    except (ValueError, TypeError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    retry_after = None
    header = response.headers.get("Retry-After")
    if header:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    message = status.get("message") or response.reason or "no message"
    return KubeError(
        response.status,
        f"{method} {path}: {response.status} {message}",
        reason=status.get("reason", ""),
        details=status.get("details"),
        retry_after=retry_after,
    )
