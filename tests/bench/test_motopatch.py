"""The benchmark's moto patch returns exactly what moto returns, page by page."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from bench import motopatch

TABLE = "credential-store"


def fill(client) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "name", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "name", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for index in range(60):
        for version in range(1, 2 + index % 3):
            item = {
                "name": {"S": f"ns-{index % 4}/app-{index // 10}/KEY_{index:02d}"},
                "version": {"S": f"{version:019d}"},
                "contents": {"S": f"c{index}-{version}"},
            }
            client.put_item(TableName=TABLE, Item=item)


def scan_pages(client, **extra) -> list[dict]:
    pages = []
    request = {"TableName": TABLE, "Limit": 7, **extra}
    while True:
        page = client.scan(**request)
        pages.append({"Items": page["Items"], "Last": page.get("LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page:
            return pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def queries(client) -> list[list[dict]]:
    answers = []
    for index in (0, 1, 2, 59):
        name = f"ns-{index % 4}/app-{index // 10}/KEY_{index:02d}"
        for forward in (True, False):
            answer = client.query(
                TableName=TABLE,
                KeyConditionExpression="#n = :n",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={":n": {"S": name}},
                ScanIndexForward=forward,
                Limit=1 + index % 2,
            )
            answers.append(answer["Items"])
    return answers


@pytest.fixture
def client():
    with mock_aws():
        dynamodb = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        fill(dynamodb)
        yield dynamodb
    motopatch.remove()


def test_scan_pages_match_moto(client) -> None:
    expected = scan_pages(client)
    motopatch.apply()
    assert scan_pages(client) == expected


def test_segment_scan_pages_match_moto(client) -> None:
    expected = [scan_pages(client, Segment=n, TotalSegments=3) for n in range(3)]
    motopatch.apply()
    assert [scan_pages(client, Segment=n, TotalSegments=3) for n in range(3)] == expected


def test_queries_match_moto(client) -> None:
    expected = queries(client)
    motopatch.apply()
    assert queries(client) == expected
