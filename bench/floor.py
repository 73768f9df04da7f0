"""The floor: the fewest calls a sync can make, issued by a plain script.

It makes one Scan pass, one KMS Decrypt per latest valid item and one server-side apply
per Secret, with the same scan segments, decrypt threads and apply threads as kubestash,
and nothing else: no cache, no comparison with live Secrets, no metrics, no logging per
item. Its wall time is what the servers themselves need for those calls, so kubestash's
figures are given as ratios to it.

Run as a child of the benchmark: `python -m bench.floor --table T --phases cold,warm`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import boto3
import credstash
import kubernetes
import urllib3
from botocore.config import Config

from bench import protocol

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KEY = re.compile(r"^[A-Z0-9_]+$")
PROJECTION = "#n, version, #k, contents, hmac, digest"


def scan(client: Any, table: str, segments: int) -> dict[str, dict]:
    """Scan the table in `segments` parallel segments; keep the latest item per name."""

    def read_segment(segment: int) -> list[dict]:
        request: dict[str, Any] = {
            "TableName": table,
            "ProjectionExpression": PROJECTION,
            "ExpressionAttributeNames": {"#n": "name", "#k": "key"},
            "ConsistentRead": True,
        }
        if segments > 1:
            request.update(Segment=segment, TotalSegments=segments)
        rows: list[dict] = []
        while True:
            page = client.scan(**request)
            rows.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return rows
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    latest: dict[str, dict] = {}
    with ThreadPoolExecutor(segments) as pool:
        for rows in pool.map(read_segment, range(segments)):
            for row in rows:
                name = row["name"]["S"]
                if name not in latest or row["version"]["S"] > latest[name]["version"]["S"]:
                    latest[name] = row
    return latest


def secret_of(name: str) -> tuple[str, str, str] | None:
    """Return (namespace, secret, key) for a valid name, None for ignored or invalid ones."""
    parts = name.split("/")
    if len(parts) != 3:
        return None
    namespace, secret, key = parts
    if not LABEL.match(namespace) or len(namespace) > 63:
        return None
    if not SUBDOMAIN.match(secret) or len(secret) > 253:
        return None
    if not KEY.match(key):
        return None
    return namespace, secret, key


def decrypt(kms: Any, rows: Iterable[dict], workers: int) -> dict[str, str]:
    def open_one(row: dict) -> tuple[str, str]:
        material = {
            "key": row["key"]["S"],
            "contents": row["contents"]["S"],
            "hmac": row["hmac"].get("B") or row["hmac"].get("S"),
            "digest": row.get("digest", {}).get("S", "SHA256"),
        }
        plaintext = credstash.open_aes_ctr_legacy(credstash.KeyService(kms, None, {}), material)
        return row["name"]["S"], plaintext

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(open_one, rows))


def group(values: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    for name, plaintext in values.items():
        namespace, secret, key = secret_of(name)  # type: ignore[misc]
        encoded = base64.b64encode(plaintext.encode()).decode()
        secrets.setdefault((namespace, secret), {})[key] = encoded
    return secrets


class Applier:
    """Server-side apply of whole Secrets over one urllib3 pool, as kubestash does."""

    def __init__(self, workers: int) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=os.environ["KUBECONFIG"], client_configuration=configuration
        )
        self.host = configuration.host
        self.workers = workers
        self.pool = urllib3.PoolManager(maxsize=workers)

    def apply(self, secrets: dict[tuple[str, str], dict[str, str]]) -> int:
        with ThreadPoolExecutor(self.workers) as pool:
            statuses = list(pool.map(self._apply_one, secrets.items()))
        return sum(1 for status in statuses if status >= 300)

    def _apply_one(self, entry: tuple[tuple[str, str], dict[str, str]]) -> int:
        (namespace, name), data = entry
        checksum = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "kubestash"},
                "annotations": {"kubestash.io/checksum": checksum},
            },
            "type": "Opaque",
            "data": data,
        }
        path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
        response = self.pool.request(
            "PATCH",
            f"{self.host}{path}?fieldManager=kubestash&force=true",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return response.status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="minimal sync calls, for comparison")
    parser.add_argument("--table", required=True)
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--decrypt-workers", type=int, default=16)
    parser.add_argument("--apply-workers", type=int, default=8)
    parser.add_argument("--phases", default="cold,warm", help="cold, warm and/or burst")
    parser.add_argument("--burst-secrets", help="JSON file of [namespace, name] pairs")
    args = parser.parse_args(argv)
    protocol.take_stdout()

    config = Config(retries={"mode": "standard"}, max_pool_connections=64)
    dynamodb = boto3.client("dynamodb", config=config)
    kms = boto3.client("kms", config=config)
    applier = Applier(args.apply_workers)

    for name in args.phases.split(","):
        if name == "burst":
            run_burst(args, dynamodb, kms, applier)
            continue
        with protocol.phase(name) as details:
            started = time.monotonic()
            latest = scan(dynamodb, args.table, args.segments)
            valid = [row for key, row in latest.items() if secret_of(key)]
            details.update(latest_items=len(latest), valid_items=len(valid))
            details["scan_seconds"] = time.monotonic() - started
            if name == "cold":
                started = time.monotonic()
                secrets = group(decrypt(kms, valid, args.decrypt_workers))
                details["decrypt_seconds"] = time.monotonic() - started
                started = time.monotonic()
                details.update(secrets=len(secrets), failed=applier.apply(secrets))
                details["apply_seconds"] = time.monotonic() - started


def run_burst(args: argparse.Namespace, dynamodb: Any, kms: Any, applier: Applier) -> None:
    """Decrypt the latest items of the named Secrets and apply each Secret once.

    The scan that finds those items is not timed: a stream record carries the new item.
    """
    with open(args.burst_secrets) as handle:
        requested = {tuple(pair) for pair in json.load(handle)}
    latest = scan(dynamodb, args.table, args.segments)
    rows = [row for key, row in latest.items() if (secret_of(key) or ("",))[:2] in requested]
    with protocol.phase("burst") as details:
        secrets = group(decrypt(kms, rows, args.decrypt_workers))
        details.update(valid_items=len(rows), secrets=len(secrets))
        details["failed"] = applier.apply(secrets)


if __name__ == "__main__":
    main()
