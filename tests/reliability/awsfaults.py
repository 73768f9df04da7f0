"""AWS faults injected into real boto3 clients that talk to moto_server.

A handler on botocore's `before-send` event answers in place of the server: an error
response (throttling, 500, expired token, access denied) or a dropped connection. botocore
then parses and retries it exactly as it would a real answer, so kubestash's retry
configuration is exercised too. moto itself never throttles, fails or checks credentials.

Also here: sealing many credstash items with one KMS data key, which fills a large table
in seconds, and refreshable credentials whose expiry a test controls.
"""

from __future__ import annotations

import base64
import codecs
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
import credstash
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from renderer.testing.aws import KMS_ALIAS, CredstashStore

THROTTLED = "ThrottlingException"
SCAN_THROTTLED = "ProvisionedThroughputExceededException"
INTERNAL = "InternalServerError"
EXPIRED = "ExpiredTokenException"
DENIED = "AccessDeniedException"


class _Body:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.payload


@dataclass
class AwsFault:
    """Answer matching requests of one operation with an error, `times` times (None: always).

    `code` "drop" closes the connection instead of answering.
    """

    operation: str
    code: str
    status: int = 400
    times: int | None = None
    match: Callable[[AWSPreparedRequest], bool] | None = None
    hits: int = 0
    seen: int = field(default=0)

    def fires(self, request: AWSPreparedRequest) -> bool:
        if self.match is not None and not self.match(request):
            return False
        self.seen += 1
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


class AwsFaults:
    """Fault rules for the boto3 clients they are attached to; thread-safe."""

    def __init__(self) -> None:
        self.rules: list[AwsFault] = []
        self._lock = threading.Lock()

    def attach(self, *clients: Any) -> AwsFaults:
        for client in clients:
            service = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register(f"before-send.{service}", self._before_send)
        return self

    def add(self, fault: AwsFault) -> AwsFault:
        with self._lock:
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.rules = []

    def _before_send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> Any:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            fault = next(
                (r for r in self.rules if r.operation == operation and r.fires(request)), None
            )
        if fault is None:
            return None
        if fault.code == "drop":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        body = json.dumps({"__type": fault.code, "message": f"injected {fault.code}"})
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": fault.code}
        return AWSResponse(request.url, fault.status, headers, _Body(body.encode()))


def body_of(request: AWSPreparedRequest) -> dict[str, Any]:
    raw = request.body or b"{}"
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def for_ciphertexts(blobs: Iterable[str]) -> Callable[[AWSPreparedRequest], bool]:
    """Match KMS Decrypt requests for these data keys (the `key` attribute of items)."""
    wanted = set(blobs)
    return lambda request: body_of(request).get("CiphertextBlob") in wanted


def later_pages(request: AWSPreparedRequest) -> bool:
    """Match Scan requests that continue a segment (every page after the first)."""
    return "ExclusiveStartKey" in body_of(request)


def data_key_of(store: CredstashStore, name: str) -> str:
    """The wrapped data key of the latest version of `name`, as KMS Decrypt receives it."""
    version = credstash.paddedInt(store.highest_version(name))
    item = store.client.get_item(
        TableName=store.table, Key={"name": {"S": name}, "version": {"S": version}}
    )["Item"]
    return item["key"]["S"]


class Sealer:
    """Seal values as credstash does, with one KMS data key for all of them.

    credstash asks KMS for a new data key per item; sharing one changes nothing for the
    reader (each item still carries the wrapped key and its own HMAC) and fills thousands
    of items in seconds. Values may be bytes, to store plaintext that is not UTF-8.
    """

    def __init__(self, store: CredstashStore, digest: str = credstash.DEFAULT_DIGEST) -> None:
        answer = store.kms.generate_data_key(KeyId=KMS_ALIAS, NumberOfBytes=64)
        self.key = answer["Plaintext"]
        self.wrapped = base64.b64encode(answer["CiphertextBlob"]).decode()
        self.digest = digest
        self.store = store

    def item(self, name: str, value: str | bytes, version: int = 1) -> dict[str, Any]:
        plaintext = _Raw(value) if isinstance(value, bytes) else value
        ciphertext, hmac = credstash._seal_aes_ctr(
            plaintext, self.key, credstash.LEGACY_NONCE, self.digest
        )
        return {
            "name": name,
            "version": credstash.paddedInt(version),
            "key": self.wrapped,
            "contents": base64.b64encode(ciphertext).decode(),
            "hmac": codecs.encode(hmac, "hex_codec"),
            "digest": self.digest,
        }

    def write(self, values: dict[str, str | bytes], version: int = 1) -> None:
        table = self.store.dynamodb.Table(self.store.table)
        with table.batch_writer() as writer:
            for name, value in values.items():
                writer.put_item(Item=self.item(name, value, version))


class _Raw:
    """Bytes that credstash's sealing encodes as they are (credstash calls `.encode`)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def encode(self, *_: Any) -> bytes:
        return self.data


class ExpiringCredentials:
    """Refreshable credentials whose current token a test can expire at will.

    `expire()` makes the token stale for botocore (so the next request refreshes it) and,
    through the fault match `reject_stale`, for the server too. With `renewable=False` the
    refresh fails as it does when STS cannot be reached.
    """

    def __init__(self, region: str) -> None:
        self.generation = 1
        self.expired: set[str] = set()
        self.renewable = True
        self.refreshes = 0
        self.credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
            metadata=self._metadata(hours=1),
            refresh_using=self._refresh,
            method="test-web-identity",
        )
        core = botocore.session.Session()
        core._credentials = self.credentials
        core.set_config_variable("region", region)
        self.session = boto3.Session(botocore_session=core)

    def _metadata(self, *, hours: float) -> dict[str, str]:
        from datetime import UTC, datetime, timedelta

        expiry = datetime.now(UTC) + timedelta(hours=hours)
        return {
            "access_key": "testing",
            "secret_key": "testing",
            "token": f"token-{self.generation}",
            "expiry_time": expiry.isoformat(),
        }

    def _refresh(self) -> dict[str, str]:
        self.refreshes += 1
        if not self.renewable:
            raise botocore.exceptions.CredentialRetrievalError(
                provider="test-web-identity", error_msg="the token endpoint is unreachable"
            )
        self.generation += 1
        return self._metadata(hours=1)

    def expire(self) -> None:
        """The current token runs out: the server rejects it, botocore must refresh it."""
        self.expired.add(f"token-{self.generation}")
        self.credentials._expiry_time = self.credentials._expiry_time.replace(year=2000)

    def reject_stale(self, request: AWSPreparedRequest) -> bool:
        presented = request.headers.get("X-Amz-Security-Token", b"")
        if isinstance(presented, bytes):
            presented = presented.decode()
        return presented in self.expired
