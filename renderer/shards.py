"""DynamoDB Streams shards: their state, the DescribeStream pages, and the AWS error codes
that decide how a reader recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from renderer import metrics

EXPIRED = "ExpiredIteratorException"
TRIMMED = "TrimmedDataAccessException"
NOT_FOUND = "ResourceNotFoundException"
THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)


@dataclass(frozen=True)
class StreamTiming:
    """Polling and backoff intervals in seconds; tests shorten them."""

    # DynamoDB Streams serves about four GetRecords calls per second per shard.
    poll_interval: float = 1.0
    describe_interval: float = 60.0
    throttle_initial: float = 0.5
    throttle_max: float = 20.0
    restart_initial: float = 1.0
    restart_max: float = 60.0
    restart_reset: float = 600.0
    max_record_failures: int = 5


class RecordFailed(Exception):
    """Syncer.apply_stream_record raised for one record."""

    def __init__(self, shard_id: str, sequence_number: str, cause: Exception):
        super().__init__(
            f"record {sequence_number} of shard {shard_id} failed: {type(cause).__name__}"
        )
        self.sequence_number = sequence_number


@dataclass
class Shard:
    """Reading position and counters of one shard."""

    shard_id: str
    parent_id: str | None
    start: str
    closed: bool = False
    status: str = "waiting"
    iterator: str | None = None
    sequence_number: str | None = None
    records: int = 0
    restarts: int = 0
    lag_seconds: float | None = None
    last_error: str | None = None
    recovering: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "parent_shard_id": self.parent_id,
            "status": self.status,
            "sequence_number": self.sequence_number,
            "records": self.records,
            "lag_seconds": self.lag_seconds,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


def discover_stream_arn(dynamodb: Any, table: str) -> str:
    """Return the table's latest stream ARN (DescribeTable's LatestStreamArn)."""
    description = dynamodb.describe_table(TableName=table)["Table"]
    arn = description.get("LatestStreamArn")
    enabled = description.get("StreamSpecification", {}).get("StreamEnabled", bool(arn))
    if not arn or not enabled:
        raise LookupError(
            f"table {table!r} has no enabled stream; enable one with view type NEW_IMAGE "
            "or NEW_AND_OLD_IMAGES, set STREAM_ARN, or set STREAM_ENABLED=false"
        )
    return arn


def describe_shards(client: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Return every shard of the stream, following DescribeStream's pages."""
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = client.describe_stream(**request)["StreamDescription"]
        shards.extend(description.get("Shards", []))
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        request["ExclusiveStartShardId"] = last


def is_throttled(error: BaseException) -> bool:
    return error_code(error) in THROTTLED


def shard_from_description(entry: dict[str, Any], *, start: str) -> Shard:
    closed = "EndingSequenceNumber" in entry.get("SequenceNumberRange", {})
    return Shard(entry["ShardId"], entry.get("ParentShardId"), start, closed=closed)


def forget_lag(shard_id: str) -> None:
    try:
        metrics.stream_lag_seconds.remove(shard_id)
    except KeyError:
        pass


def describe_error(error: BaseException) -> str:
    code = error_code(error)
    if code:
        return f"{code}: {error}"
    return f"{type(error).__name__}: {error}"
