"""A live cache of the Secrets kubestash manages, kept current by a Kubernetes watch.

One paginated LIST of the Secrets labelled `app.kubernetes.io/managed-by=kubestash` in all
namespaces fills the cache, then a watch from the list's resourceVersion (with bookmarks, so
that a quiet watch still advances its resourceVersion) applies every change. A watch that ends
normally (the server's timeoutSeconds) resumes from the last resourceVersion seen. "410 Gone"
means that resourceVersion is older than the server keeps, so the cache is rebuilt by a new
LIST. Any other error restarts the list and watch with exponential backoff and is logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import tenacity
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from renderer import metrics
from renderer.names import SecretRef

logger = logging.getLogger(__name__)

MANAGED_SELECTOR = "app.kubernetes.io/managed-by=kubestash"
FIELD_MANAGER = "kubestash"
LIST_PAGE_SIZE = 500


class LiveSecret(NamedTuple):
    """The cached part of one Secret: base64 `data` as the API returns it, and the field
    managers other than kubestash that own each key."""

    uid: str
    resource_version: str
    data: dict[str, str]
    managers: dict[str, frozenset[str]]


class _RawWatch(watch.Watch):
    """A watch that yields the objects as decoded JSON instead of building client models."""

    def get_return_type(self, func: Callable[..., Any]) -> None:
        return None


class SecretWatch:
    """List and watch managed Secrets in a thread; call back after each change.

    `on_relist()` runs after every LIST that replaced the cache, `on_change(ref)` after each
    watch event that added, changed or deleted a Secret. Both run on the watch thread, with no
    lock of this class held.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        on_relist: Callable[[], None],
        on_change: Callable[[SecretRef], None],
        request_timeout: float = 15.0,
        watch_timeout: int = 300,
        label_selector: str = MANAGED_SELECTOR,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._on_relist = on_relist
        self._on_change = on_change
        self.request_timeout = request_timeout
        self.watch_timeout = watch_timeout
        self.label_selector = label_selector
        self._secrets: dict[SecretRef, LiveSecret] = {}
        self._lock = threading.Lock()
        self._listed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: _RawWatch | None = None
        self.resource_version: str | None = None
        self.watching = False
        self.relists = 0
        self.restarts = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the watch; a blocked read is interrupted by shutting its socket down."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return
        waited = 0.0
        while thread.is_alive() and waited < timeout:
            watcher = self._watcher
            if watcher is not None:
                watcher.stop()
            thread.join(0.1)
            waited += 0.1
        self._thread = None
        self.watching = False

    def wait_listed(self, timeout: float) -> bool:
        """Block until the first LIST filled the cache; return False on timeout."""
        return self._listed.wait(timeout)

    def get(self, ref: SecretRef) -> LiveSecret | None:
        with self._lock:
            return self._secrets.get(ref)

    def size(self) -> int:
        with self._lock:
            return len(self._secrets)

    def _run(self) -> None:
        retrying = tenacity.Retrying(
            wait=tenacity.wait_random_exponential(multiplier=0.5, max=30),
            stop=lambda state: self._stopping.is_set(),
            sleep=self._stopping.wait,
            before_sleep=self._log_restart,
        )
        logger.debug("watch on Secrets %s started", self.label_selector)
        while not self._stopping.is_set():
            try:
                retrying(self._watch_once)
            except tenacity.RetryError:
                break
        logger.debug("watch on Secrets %s stopped", self.label_selector)

    def _watch_once(self) -> None:
        """Run one watch request until the server ends it, relisting first when needed."""
        if self.resource_version is None:
            self._relist()
        watcher = _RawWatch()
        self._watcher = watcher
        if self._stopping.is_set():
            return
        try:
            stream = watcher.stream(
                self._core.list_secret_for_all_namespaces,
                label_selector=self.label_selector,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout,
                _request_timeout=(self.request_timeout, self.watch_timeout + self.request_timeout),
            )
            self.watching = True
            for event in stream:
                self._handle(event)
                if self._stopping.is_set():
                    break
            metrics.kube_requests_total.labels("watch", "200").inc()
        except ApiException as error:
            metrics.kube_requests_total.labels("watch", str(error.status or 0)).inc()
            if error.status != 410:
                raise
            # 410 Gone: the server no longer keeps history back to this resourceVersion.
            logger.info(
                "watch on Secrets resourceVersion %s expired (410 Gone); listing again",
                self.resource_version,
            )
            self.resource_version = None
        finally:
            self._watcher = None

    def _relist(self) -> None:
        secrets: dict[SecretRef, LiveSecret] = {}
        token: str | None = None
        resource_version = None
        while True:
            page = self._list_page(token)
            metadata = page.get("metadata") or {}
            resource_version = resource_version or metadata.get("resourceVersion")
            for item in page.get("items") or ():
                item_metadata = item.get("metadata") or {}
                ref = SecretRef(item_metadata["namespace"], item_metadata["name"])
                secrets[ref] = live_secret(item)
            token = metadata.get("continue")
            if not token:
                break
        with self._lock:
            self._secrets = secrets
        self.resource_version = resource_version
        self.relists += 1
        self._listed.set()
        logger.debug(
            "listed %d managed Secrets at resourceVersion %s", len(secrets), resource_version
        )
        self._on_relist()

    def _list_page(self, token: str | None) -> dict[str, Any]:
        try:
            response = self._core.list_secret_for_all_namespaces(
                label_selector=self.label_selector,
                limit=LIST_PAGE_SIZE,
                _continue=token,
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
        except ApiException as error:
            metrics.kube_requests_total.labels("list", str(error.status or 0)).inc()
            raise
        metrics.kube_requests_total.labels("list", str(response.status)).inc()
        return json.loads(response.data)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get("raw_object") or {}
        metadata = body.get("metadata") or {}
        resource_version = metadata.get("resourceVersion")
        if kind == "BOOKMARK":
            if resource_version:
                self.resource_version = resource_version
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            logger.debug("ignoring watch event of type %s", kind)
            return
        ref = SecretRef(metadata["namespace"], metadata["name"])
        with self._lock:
            if kind == "DELETED":
                self._secrets.pop(ref, None)
            else:
                self._secrets[ref] = live_secret(body)
        if resource_version:
            self.resource_version = resource_version
        self._on_change(ref)

    def _log_restart(self, state: tenacity.RetryCallState) -> None:
        self.watching = False
        self.restarts += 1
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        expected = isinstance(
            error, ApiException | OSError
        ) or error.__class__.__module__.startswith("urllib3")
        logger.warning(
            "watch on managed Secrets failed: %s; restarting in %.1f seconds",
            _describe(error),
            delay,
            exc_info=None if expected else error,
        )


def live_secret(body: dict[str, Any]) -> LiveSecret:
    metadata = body.get("metadata") or {}
    managers: dict[str, set[str]] = {}
    for entry in metadata.get("managedFields") or ():
        manager = entry.get("manager") or ""
        if manager == FIELD_MANAGER:
            continue
        owned = (entry.get("fieldsV1") or {}).get("f:data") or {}
        for field_name in owned:
            if field_name.startswith("f:"):
                managers.setdefault(field_name[2:], set()).add(manager)
    return LiveSecret(
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        data=dict(body.get("data") or {}),
        managers={key: frozenset(names) for key, names in managers.items()},
    )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    if error is None:
        return "unknown error"
    return f"{type(error).__name__}: {error}"
