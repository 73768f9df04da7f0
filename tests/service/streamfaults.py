"""A wrapper around a real DynamoDB Streams client that adds what moto never does.

moto serves one shard that never closes and iterators that never expire. This wrapper
passes every call through to moto and, on request, raises a service error once, keeps
GetRecords at its position, or splits the shard: the real shard is then reported closed
at its current last sequence number, and a child shard continues with the real records
written after that point, so the records themselves still come from moto.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from botocore.exceptions import ClientError

EMPTY = "empty"


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)


class FaultyStreams:
    def __init__(self, client: Any, stream_arn: str):
        self.client = client
        self.stream_arn = stream_arn
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.held = threading.Event()
        self._faults: dict[str, list[tuple[str, BaseException]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._closed_at: dict[str, str | None] = {}
        self._children: dict[str, tuple[str, str | None]] = {}
        self._hidden: set[str] = set()

    def fail_next(self, operation: str, error: BaseException, shard_id: str = "") -> None:
        """Raise `error` from the next call of `operation`, on `shard_id` if one is given."""
        with self._lock:
            self._faults[operation].append((shard_id, error))

    def split(self, shard_id: str, *, children: int = 2, hidden: bool = False) -> list[str]:
        """Close `shard_id` at its last record; the first child continues its records."""
        last = self._last_sequence_number(shard_id)
        names = [f"{shard_id}-child{index}" for index in range(1, children + 1)]
        with self._lock:
            self._closed_at[shard_id] = last
            self._children[names[0]] = (shard_id, last)
            for name in names[1:]:
                self._children[name] = (shard_id, EMPTY)
            if hidden:
                self._hidden.update(names)
        return names

    def reveal(self) -> None:
        with self._lock:
            self._hidden.clear()

    def operations(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [kwargs for operation, kwargs in self.calls if operation == name]

    def _record(self, operation: str, kwargs: dict[str, Any], shard_id: str = "") -> None:
        error = None
        with self._lock:
            self.calls.append((operation, dict(kwargs)))
            pending = self._faults[operation]
            for index, (wanted, fault) in enumerate(pending):
                if wanted in ("", shard_id):
                    error = fault
                    del pending[index]
                    break
        if error is not None:
            raise error

    def describe_stream(self, **kwargs: Any) -> dict[str, Any]:
        self._record("describe_stream", kwargs)
        response = self.client.describe_stream(**kwargs)
        shards = []
        for shard in response["StreamDescription"]["Shards"]:
            shard = dict(shard)
            shard_id = shard["ShardId"]
            if shard_id in self._closed_at:
                numbers = dict(shard["SequenceNumberRange"])
                numbers["EndingSequenceNumber"] = self._closed_at[shard_id] or numbers.get(
                    "StartingSequenceNumber", "0"
                )
                shard["SequenceNumberRange"] = numbers
            shards.append(shard)
        for child, (parent, _) in self._children.items():
            if child in self._hidden:
                continue
            shards.append(
                {
                    "ShardId": child,
                    "ParentShardId": parent,
                    "SequenceNumberRange": {"StartingSequenceNumber": "0"},
                }
            )
        response["StreamDescription"]["Shards"] = shards
        return response

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        shard_id = kwargs["ShardId"]
        self._record("get_shard_iterator", kwargs, shard_id)
        if shard_id not in self._children:
            real = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
            return {"ShardIterator": f"{shard_id}|{real}"}

        parent, after = self._children[shard_id]
        if after == EMPTY:
            return {"ShardIterator": f"{shard_id}|{EMPTY}"}
        request = {**kwargs, "ShardId": parent}
        if kwargs["ShardIteratorType"] == "TRIM_HORIZON" and after is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        real = self.client.get_shard_iterator(**request)["ShardIterator"]
        return {"ShardIterator": f"{shard_id}|{real}"}

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        shard_id, _, real = kwargs["ShardIterator"].partition("|")
        if self.held.is_set():
            return {"Records": [], "NextShardIterator": kwargs["ShardIterator"]}
        self._record("get_records", kwargs, shard_id)
        if real == EMPTY:
            return {"Records": [], "NextShardIterator": kwargs["ShardIterator"]}

        response = self.client.get_records(**{**kwargs, "ShardIterator": real})
        records = response.get("Records", [])
        next_real = response.get("NextShardIterator")
        if shard_id in self._closed_at:
            end = self._closed_at[shard_id]
            kept = [r for r in records if end is not None and _number(r) <= int(end)]
            if len(kept) < len(records) or not records:
                return {"Records": kept}
        wrapped = f"{shard_id}|{next_real}" if next_real else None
        return {"Records": records, "NextShardIterator": wrapped}

    def _last_sequence_number(self, shard_id: str) -> str | None:
        iterator = self.client.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        last = None
        while iterator:
            response = self.client.get_records(ShardIterator=iterator)
            if not response["Records"]:
                return last
            last = response["Records"][-1]["dynamodb"]["SequenceNumber"]
            iterator = response.get("NextShardIterator")
        return last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _number(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])
