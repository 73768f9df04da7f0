"""DescribeStream paging and stream discovery."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from renderer.stream import describe_shards, discover_stream_arn

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/credential-store/stream/2024-01-01T00:00:00"


def shard_id(letter: str) -> str:
    return f"shardId-00000001700000000000-{letter * 8}"


def shard(letter: str, parent: str | None = None) -> dict[str, object]:
    entry: dict[str, object] = {
        "ShardId": shard_id(letter),
        "SequenceNumberRange": {"StartingSequenceNumber": "100000000000000000001"},
    }
    if parent:
        entry["ParentShardId"] = shard_id(parent)
    return entry


def page(shards: list[dict[str, object]], last: str | None) -> dict[str, object]:
    description: dict[str, object] = {"StreamArn": ARN, "StreamStatus": "ENABLED", "Shards": shards}
    if last:
        description["LastEvaluatedShardId"] = last
    return {"StreamDescription": description}


def test_describe_follows_every_page() -> None:
    client = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_stream", page([shard("a"), shard("b")], shard_id("b")), {"StreamArn": ARN}
        )
        stubber.add_response(
            "describe_stream",
            page([shard("c", parent="a")], None),
            {"StreamArn": ARN, "ExclusiveStartShardId": shard_id("b")},
        )
        shards = describe_shards(client, ARN)
        stubber.assert_no_pending_responses()

    assert [entry["ShardId"] for entry in shards] == [shard_id(x) for x in "abc"]


def test_stream_is_discovered_from_table(credstash_table: object) -> None:
    arn = discover_stream_arn(credstash_table.client, credstash_table.table)
    assert arn == credstash_table.stream_arn


def test_table_without_stream_names_the_fix(aws: object) -> None:
    client = aws.client("dynamodb")
    client.create_table(
        TableName="no-stream",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(LookupError, match="STREAM_ENABLED=false"):
        discover_stream_arn(client, "no-stream")
