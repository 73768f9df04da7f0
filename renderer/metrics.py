"""Prometheus metrics of one kubestash process, in a registry of their own.

Names, labels and units follow the Prometheus conventions: base units (seconds), `_total` on
counters. The first four keep the old service's names so its dashboards go on working.
Per-key gauges carry the namespace, Secret and KEY, never a value.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

KEY_LABELS = ("namespace", "secret", "key")

settings_info = Info(
    "kubestash_v2_settings",
    "Effective settings of this kubestash process (secret ones shown as set or unset).",
    registry=REGISTRY,
)
key_failed = Gauge(
    "kubestash_key_synced_failed_status",
    "1 when the last sync of this key failed (decrypt, validation or apply), 0 when it succeeded.",
    KEY_LABELS,
    registry=REGISTRY,
)
table_fetch_status = Gauge(
    "kubestash_table_fetch_status",
    "1 when the last read of the credstash table failed or timed out, 0 when it succeeded.",
    registry=REGISTRY,
)
ddb_fetch_seconds = Histogram(
    "kubestash_ddb_fetch_seconds",
    "Seconds taken by one full Scan of the credstash table.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
key_drift = Gauge(
    "kubestash_secret_key_drift",
    "1 when the live Secret key differs from the table (changed, missing, or Secret missing).",
    KEY_LABELS,
    registry=REGISTRY,
)
sync_total = Counter(
    "kubestash_sync",
    "Syncs by trigger (startup, schedule, render, stream, drift) and result "
    "(success, partial, failed, timeout, blocked).",
    ("trigger", "result"),
    registry=REGISTRY,
)
sync_duration_seconds = Histogram(
    "kubestash_sync_duration_seconds",
    "Seconds taken by one sync, full or incremental.",
    ("kind",),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
last_success_timestamp = Gauge(
    "kubestash_last_successful_sync_timestamp_seconds",
    "Unix time at which the last full sync finished without a failed key or Secret.",
    registry=REGISTRY,
)
managed_secrets = Gauge(
    "kubestash_managed_secrets",
    "Secrets that the table currently describes (outside excluded namespaces).",
    registry=REGISTRY,
)
managed_keys = Gauge(
    "kubestash_managed_keys",
    "Keys that the table currently describes across all managed Secrets.",
    registry=REGISTRY,
)
invalid_keys = Gauge(
    "kubestash_invalid_keys",
    "credstash names with three parts that cannot become a Secret key, at the last scan.",
    registry=REGISTRY,
)
kms_decrypt_total = Counter(
    "kubestash_kms_decrypt",
    "KMS Decrypt calls by result (success, error).",
    ("result",),
    registry=REGISTRY,
)
decrypt_cache_hits_total = Counter(
    "kubestash_decrypt_cache_hits",
    "Items whose plaintext came from the cache instead of KMS.",
    registry=REGISTRY,
)
kube_requests_total = Counter(
    "kubestash_kube_requests",
    "Kubernetes API requests by verb and HTTP status code (0 when no answer came).",
    ("verb", "code"),
    registry=REGISTRY,
)
stream_records_total = Counter(
    "kubestash_stream_records",
    "DynamoDB Streams records read, by event (INSERT, MODIFY, REMOVE).",
    ("event",),
    registry=REGISTRY,
)
stream_lag_seconds = Gauge(
    "kubestash_stream_lag_seconds",
    "Seconds between the newest record read from a shard and the time it was read.",
    ("shard",),
    registry=REGISTRY,
)
http_requests_total = Counter(
    "kubestash_http_requests",
    "HTTP requests answered, by handler, method and status code.",
    ("handler", "method", "code"),
    registry=REGISTRY,
)
leader = Gauge(
    "kubestash_leader",
    "1 while this process is the leader (or leader election is off), 0 on standby.",
    registry=REGISTRY,
)


def forget_key(namespace: str, secret: str, key: str) -> None:
    """Remove the per-key series of a key that left the table."""
    for gauge in (key_failed, key_drift):
        try:
            gauge.remove(namespace, secret, key)
        except KeyError:
            pass


SYNC_TRIGGERS = ("startup", "schedule", "render", "stream", "drift")
SYNC_RESULTS = ("success", "partial", "failed", "timeout", "blocked")

# A counter series that first appears at 1 has no increase() in Prometheus, so an alert on
# the first timeout would never fire: every trigger and result starts at 0.
for _trigger in SYNC_TRIGGERS:
    for _result in SYNC_RESULTS:
        sync_total.labels(_trigger, _result)
