"""The benchmark's credstash table: the names it contains and how it is filled.

A workload of N keys has N latest valid items: 10 keys per Secret, Secrets spread over 50
namespaces, every tenth name with two or three versions. A few names are ignored (not
three parts long) and a few are invalid (three parts that cannot become a Secret key), as
in a table shared with other tools. Items are sealed by credstash's own
`seal_aes_ctr_legacy` and `KeyService` (one KMS data key per item, as `credstash put`
does) and written in DynamoDB batches, which is much faster than one `putSecret` per item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import credstash
from botocore.config import Config

logger = logging.getLogger(__name__)

NAMESPACES = 50
KEYS_PER_SECRET = 10
KMS_ALIAS = "alias/credstash"
FILL_WORKERS = 8
BATCH_SIZE = 250

# Names kubestash must skip without a warning: not three parts long. kubestash 2.0.2
# `pushall` stops with a ValueError on any of them, so they are written only after it ran.
IGNORED_NAMES = ("plain-name", "two/parts", "four/parts/in/name", "ci.deploy.token", "a/b/c/d/e")

# Three-part names that cannot become a Secret key: each is reported and never written.
INVALID_NAMES = (
    "Bad_Namespace/app/KEY",
    "-leading-dash/app/KEY",
    "ns-00/Bad_Secret/KEY",
    "ns-00/bench-invalid/BAD KEY",
    "ns-00/bench-invalid/KEY!",
)


@dataclass(frozen=True)
class Entry:
    """One credstash item to write: a name, its version number and its value."""

    name: str
    version: int
    value: str


def namespace_names() -> list[str]:
    return [f"ns-{index:02d}" for index in range(NAMESPACES)]


def secret_ref(index: int) -> tuple[str, str]:
    """Return (namespace, Secret name) of the Secret with this index."""
    return f"ns-{index % NAMESPACES:02d}", f"app-{index:05d}"


def key_name(index: int) -> str:
    """Return the credstash name of the index-th key of a workload."""
    namespace, secret = secret_ref(index // KEYS_PER_SECRET)
    return f"{namespace}/{secret}/KEY_{index % KEYS_PER_SECRET:02d}"


def version_count(index: int) -> int:
    """Return 2 or 3 for every tenth name and 1 for the others."""
    if index % 10 != 0:
        return 1
    return 2 + (index // 10) % 2


def value_for(name: str, version: int) -> str:
    """Return the benchmark value of one version; distinct per version so changes show."""
    return f"value-{version}-{name}"


def entries(size: int) -> Iterator[Entry]:
    """Yield every item of the valid workload (all versions of all N names)."""
    for index in range(size):
        name = key_name(index)
        for version in range(1, version_count(index) + 1):
            yield Entry(name, version, value_for(name, version))


def extra_entries(names: tuple[str, ...]) -> list[Entry]:
    return [Entry(name, 1, value_for(name, 1)) for name in names]


def secret_count(size: int) -> int:
    return (size + KEYS_PER_SECRET - 1) // KEYS_PER_SECRET


def item_count(size: int) -> int:
    """Return the number of DynamoDB items of the valid workload (all versions)."""
    return sum(version_count(index) for index in range(size))


def create_table(session: boto3.Session, table: str) -> None:
    """Create a credstash table (credstash's key schema) with a stream of both images."""
    client = session.client("dynamodb")
    client.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "name", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "name", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(TableName=table)


def create_kms_key(session: boto3.Session) -> None:
    kms = session.client("kms")
    key_id = kms.create_key(Description="credstash benchmark key")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)


def fill(session: boto3.Session, table: str, items: list[Entry]) -> float:
    """Seal and write `items` with FILL_WORKERS threads; return the seconds it took."""
    started = time.monotonic()
    batches = [items[start : start + BATCH_SIZE] for start in range(0, len(items), BATCH_SIZE)]
    with ThreadPoolExecutor(FILL_WORKERS, thread_name_prefix="fill") as pool:
        list(pool.map(lambda batch: _write_batch(session, table, batch), batches))
    seconds = time.monotonic() - started
    logger.info("filled %d items into %s in %.1f s", len(items), table, seconds)
    return seconds


def _write_batch(session: boto3.Session, table: str, batch: list[Entry]) -> None:
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    kms = session.client("kms", config=config)
    key_service = credstash.KeyService(kms, KMS_ALIAS, {})
    resource = session.resource("dynamodb", config=config)
    with resource.Table(table).batch_writer() as writer:
        for entry in batch:
            writer.put_item(Item=sealed_item(key_service, entry))


def sealed_item(key_service: credstash.KeyService, entry: Entry) -> dict:
    """Return the item `credstash.putSecret` would write for this entry."""
    item = {"name": entry.name, "version": credstash.paddedInt(entry.version)}
    item.update(credstash.seal_aes_ctr_legacy(key_service, entry.value))
    return item


def put_version(dynamodb: object, kms: object, table: str, entry: Entry) -> None:
    """Write one new version through `credstash.putSecret`, as `credstash put -v` does.

    `dynamodb` is a boto3 DynamoDB resource and `kms` a KMS client, made once by the caller.
    """
    credstash.putSecret(
        entry.name,
        entry.value,
        version=credstash.paddedInt(entry.version),
        kms_key=KMS_ALIAS,
        table=table,
        dynamodb=dynamodb,
        kms=kms,
    )
