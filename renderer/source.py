"""The DynamoDB side: scan the credstash table and keep the latest version of each name.

The low-level DynamoDB client is used instead of boto3's Table resource because the
resource converts every attribute through TypeDeserializer, which costs more than the
Scan itself on a large table.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from renderer.settings import Settings

logger = logging.getLogger(__name__)

# Only the attributes the sync needs: credstash's optional "comment" can be large.
PROJECTION = "#n, version, #k, contents, hmac, digest"
PROJECTION_NAMES = {"#n": "name", "#k": "key"}
SEGMENT_BYTES = 1024 * 1024
MAX_SEGMENTS = 64


@dataclass(frozen=True, slots=True)
class Item:
    """One version of one credstash secret, still encrypted.

    `hmac` is kept as stored: credstash 1.17 writes it as Binary, older versions as a
    String of hex digits. `fingerprint` hashes the encrypted material, so that a cache
    keyed on it can never return the plaintext of another ciphertext.
    """

    name: str
    version: str
    key: str = field(repr=False)
    contents: str = field(repr=False)
    hmac: bytes | str = field(repr=False)
    digest: str
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", _fingerprint(self))

    def material(self) -> dict[str, Any]:
        """Return the item in the shape credstash's open_aes_ctr_legacy reads."""
        return {
            "key": self.key,
            "contents": self.contents,
            "hmac": self.hmac,
            "digest": self.digest,
        }


def _fingerprint(item: Item) -> str:
    hmac = item.hmac.encode() if isinstance(item.hmac, str) else item.hmac
    digest = hashlib.sha256()
    for part in (item.key.encode(), item.contents.encode(), hmac, item.digest.encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.hexdigest()


def item_from_image(image: Mapping[str, Mapping[str, Any]]) -> Item:
    """Build an Item from low-level AttributeValue dicts (Scan output or a stream image).

    Missing attributes become empty strings; decryption then fails for that key alone.
    """
    return Item(
        name=_attribute(image, "name"),
        version=_attribute(image, "version"),
        key=_attribute(image, "key"),
        contents=_attribute(image, "contents"),
        hmac=_attribute(image, "hmac"),
        digest=_attribute(image, "digest") or "SHA256",
    )


def _attribute(image: Mapping[str, Mapping[str, Any]], name: str) -> Any:
    value = image.get(name)
    if not value:
        return ""
    if "S" in value:
        return value["S"]
    if "B" in value:
        return value["B"]
    if "N" in value:
        return value["N"]
    return ""


def newer(candidate: Item, current: Item | None) -> bool:
    """credstash's rule: the largest version string wins (versions are zero-padded)."""
    return current is None or candidate.version > current.version


@dataclass
class ScanResult:
    items: dict[str, Item]
    rows: int
    segments: int
    seconds: float


class CredstashTable:
    """Read access to one credstash table.

    `page_size` caps the items per Scan page (DynamoDB's Limit); by default a page is
    whatever fits in DynamoDB's 1 MB.
    """

    def __init__(
        self,
        settings: Settings,
        session: boto3.Session | None = None,
        *,
        page_size: int | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.ddb_table
        self.page_size = page_size
        session = session or boto3.Session()
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max(MAX_SEGMENTS, 10),
        )
        self.client = session.client("dynamodb", region_name=settings.table_region, config=config)

    def scan(self) -> ScanResult:
        """Read the whole table and keep the latest version of every name.

        Uses consistent reads, so a sync started right after `credstash put` sees the new
        version. Raises botocore errors; the caller treats any error as a failed scan.
        """
        started = time.monotonic()
        segments = self.segment_count()
        if segments == 1:
            parts = [self._scan_segment(0, 1)]
        else:
            with ThreadPoolExecutor(segments, thread_name_prefix="scan") as pool:
                futures = [pool.submit(self._scan_segment, n, segments) for n in range(segments)]
                parts = [future.result() for future in futures]

        latest: dict[str, Item] = {}
        rows = 0
        for part_rows, part in parts:
            rows += part_rows
            for name, item in part.items():
                if newer(item, latest.get(name)):
                    latest[name] = item
        seconds = time.monotonic() - started
        return ScanResult(latest, rows, segments, seconds)

    def segment_count(self) -> int:
        """Return SCAN_SEGMENTS, or one segment per MiB of table when it is 0.

        DynamoDB updates TableSizeBytes about every six hours, so the count is a guide.
        """
        if self.settings.scan_segments:
            return self.settings.scan_segments
        table = self.client.describe_table(TableName=self.name)["Table"]
        size = int(table.get("TableSizeBytes", 0))
        return max(1, min(MAX_SEGMENTS, math.ceil(size / SEGMENT_BYTES)))

    def _scan_segment(self, segment: int, total: int) -> tuple[int, dict[str, Item]]:
        request: dict[str, Any] = {
            "TableName": self.name,
            "ProjectionExpression": PROJECTION,
            "ExpressionAttributeNames": PROJECTION_NAMES,
            "ConsistentRead": True,
        }
        if total > 1:
            request["Segment"] = segment
            request["TotalSegments"] = total
        if self.page_size:
            request["Limit"] = self.page_size

        latest: dict[str, Item] = {}
        rows = 0
        while True:
            page = self.client.scan(**request)
            for image in page.get("Items", []):
                rows += 1
                item = item_from_image(image)
                if newer(item, latest.get(item.name)):
                    latest[item.name] = item
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return rows, latest
            request["ExclusiveStartKey"] = last_key

    def latest_version(self, name: str) -> Item | None:
        """Return the newest remaining version of `name`, or None when none is left."""
        page = self.client.query(
            TableName=self.name,
            KeyConditionExpression="#n = :name",
            ExpressionAttributeNames=PROJECTION_NAMES,
            ExpressionAttributeValues={":name": {"S": name}},
            ProjectionExpression=PROJECTION,
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=1,
        )
        items = page.get("Items", [])
        if not items:
            return None
        return item_from_image(items[0])


def latest_version(table: CredstashTable, name: str) -> Item | None:
    return table.latest_version(name)
