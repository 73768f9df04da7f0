"""moto_server on 127.0.0.1 and a credstash table in it, filled through the credstash library.

Used by the tests, the demo and the benchmarks. moto keeps everything in memory; `reset()`
empties it between tests. Never disable a stream on moto: that breaks the table, so reset
instead.
"""

from __future__ import annotations

import codecs
import logging
import shutil
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

import boto3
import credstash

from renderer.testing.process import ServerProcess

logger = logging.getLogger(__name__)

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
KMS_ALIAS = "alias/credstash"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer(ServerProcess):
    """A moto_server subprocess serving DynamoDB, DynamoDB Streams and KMS on loopback."""

    name = "moto_server"

    def __init__(self, port: int = 0, region: str = "us-east-1") -> None:
        super().__init__()
        self.port = port
        self.region = region

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        self.port = self.port or free_port()
        executable = shutil.which("moto_server")
        command = [executable] if executable else [sys.executable, "-m", "moto.server"]
        command += ["-H", "127.0.0.1", "-p", str(self.port)]
        self.launch(command, f"{self.url}/moto-api/", timeout=timeout)
        return self

    def reset(self) -> None:
        """Forget every table, stream and key."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 and the credstash CLI at this server."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.url)


class CredstashStore:
    """A credstash table with its KMS key `alias/credstash` in a moto server.

    The table has credstash's key schema plus a stream (NEW_AND_OLD_IMAGES), which
    `credstash setup` does not create but kubestash reads.
    """

    def __init__(self, server: MotoServer, table: str = "credential-store") -> None:
        self.server = server
        self.table = table
        self.region = server.region
        session = server.session()
        self.kms = session.client("kms", endpoint_url=server.url)
        self.dynamodb = session.resource("dynamodb", endpoint_url=server.url)
        self.client = session.client("dynamodb", endpoint_url=server.url)
        self.key_id = ""
        self.stream_arn = ""

    def create(self) -> CredstashStore:
        key = self.kms.create_key(Description="credstash")["KeyMetadata"]
        self.key_id = key["KeyId"]
        self.kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=self.key_id)
        description = self.client.create_table(
            TableName=self.table,
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
        self.stream_arn = description["TableDescription"].get("LatestStreamArn", "")
        return self

    def highest_version(self, name: str) -> int:
        page = self.client.query(
            TableName=self.table,
            KeyConditionExpression="#n = :name",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":name": {"S": name}},
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=1,
        )
        items = page.get("Items", [])
        return int(items[0]["version"]["S"]) if items else 0

    def put(
        self,
        name: str,
        value: str,
        *,
        version: int | None = None,
        digest: str = credstash.DEFAULT_DIGEST,
        context: dict[str, str] | None = None,
    ) -> int:
        """Store a secret with credstash's putSecret; the next version unless one is given."""
        if version is None:
            version = self.highest_version(name) + 1
        credstash.putSecret(
            name,
            value,
            version=str(version),
            kms_key=KMS_ALIAS,
            table=self.table,
            context=context,
            digest=digest,
            kms=self.kms,
            dynamodb=self.dynamodb,
        )
        return version

    def put_many(self, secrets: dict[str, str]) -> None:
        for name, value in secrets.items():
            self.put(name, value)

    def get(self, name: str, context: dict[str, str] | None = None) -> str:
        return credstash.getSecret(
            name, table=self.table, context=context, kms=self.kms, dynamodb=self.dynamodb
        )

    def delete(self, name: str, version: int | None = None) -> None:
        """Delete every version of `name` (or just `version`), as `credstash delete` does."""
        versions = [version] if version is not None else self._versions(name)
        for number in versions:
            self.client.delete_item(
                TableName=self.table,
                Key={"name": {"S": name}, "version": {"S": credstash.paddedInt(number)}},
            )

    def _versions(self, name: str) -> list[int]:
        page = self.client.query(
            TableName=self.table,
            KeyConditionExpression="#n = :name",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":name": {"S": name}},
            ConsistentRead=True,
        )
        return [int(item["version"]["S"]) for item in page.get("Items", [])]

    def put_raw(self, item: dict[str, Any]) -> None:
        """Write a low-level item as is, for malformed or tampered items in tests."""
        self.client.put_item(TableName=self.table, Item=item)

    def tamper(self, name: str) -> None:
        """Replace the stored HMAC of the latest version, so that integrity checks fail."""
        version = credstash.paddedInt(self.highest_version(name))
        self.client.update_item(
            TableName=self.table,
            Key={"name": {"S": name}, "version": {"S": version}},
            UpdateExpression="SET hmac = :h",
            ExpressionAttributeValues={":h": {"B": codecs.encode(b"\x00" * 32, "hex_codec")}},
        )

    def env(self) -> dict[str, str]:
        """The moto variables plus the kubestash settings that name this table."""
        return {
            **self.server.env(),
            "DDB_TABLE": self.table,
            "TABLE_REGION": self.region,
        }
