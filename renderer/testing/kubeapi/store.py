"""In-memory object storage with resource versions and a bounded watch history.

Like etcd behind kube-apiserver, one counter gives every write a new resource version,
across all resources. Objects are kept per resource in key order (namespace, name) so
that a page of a list is a binary search plus a slice, never a sort of everything.
Stored objects are never mutated: each write stores a new dict, which lets lists and
watch events share them without copying, and lets a list reuse each object's JSON.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]


@dataclass
class Record:
    """A stored object and its JSON as a list item (without apiVersion and kind)."""

    obj: dict[str, Any]
    _item_json: bytes | None = None

    def item_json(self) -> bytes:
        if self._item_json is None:
            item = {k: v for k, v in self.obj.items() if k not in ("apiVersion", "kind")}
            self._item_json = json.dumps(item, separators=(",", ":")).encode()
        return self._item_json


@dataclass
class Change:
    """One entry of the watch history."""

    seq: int
    resource_version: int
    type: str
    store_key: str
    namespace: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None = None


@dataclass
class Bucket:
    records: dict[Key, Record] = field(default_factory=dict)
    order: list[Key] = field(default_factory=list)


class Store:
    """All objects, the resource version counter and the watch history."""

    def __init__(self, history_size: int = 50_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.history_size = history_size
        self.clear()

    def clear(self) -> None:
        """Drop every object and the history; open watches end, as on a restart."""
        with self.lock:
            self.epoch = getattr(self, "epoch", 0) + 1
            self.resource_version = 1
            self.buckets: dict[str, Bucket] = {}
            self.history: list[Change] = []
            self.history_start = 0
            self.compacted_version = 0
            self.closed = False
            self.changed.notify_all()

    def close(self) -> None:
        """Wake every watcher so it can end its stream."""
        with self.lock:
            self.closed = True
            self.changed.notify_all()

    def _bucket(self, store_key: str) -> Bucket:
        bucket = self.buckets.get(store_key)
        if bucket is None:
            bucket = self.buckets[store_key] = Bucket()
        return bucket

    def get(self, store_key: str, namespace: str, name: str) -> dict[str, Any] | None:
        record = self._bucket(store_key).records.get((namespace, name))
        return record.obj if record else None

    def count(self, store_key: str, namespace: str | None = None) -> int:
        bucket = self._bucket(store_key)
        if namespace is None:
            return len(bucket.order)
        start = bisect.bisect_left(bucket.order, (namespace, ""))
        end = bisect.bisect_left(bucket.order, (namespace + "\0", ""))
        return end - start

    def rank(self, store_key: str, namespace: str | None, after: Key | None) -> int:
        """Count the keys up to and including `after` (within `namespace` when given)."""
        if after is None:
            return 0
        order = self._bucket(store_key).order
        start = bisect.bisect_left(order, (namespace or "", ""))
        return bisect.bisect_right(order, after) - start

    def scan(
        self, store_key: str, namespace: str | None = None, after: Key | None = None
    ) -> Iterator[Record]:
        """Yield records in key order, within one namespace when given, after `after`."""
        with self.lock:
            bucket = self._bucket(store_key)
            order = bucket.order
            records = bucket.records
            start = (namespace or "", "") if after is None else after
            index = bisect.bisect_right(order, start) if after else bisect.bisect_left(order, start)
            keys = order[index:]
        for key in keys:
            if namespace is not None and key[0] != namespace:
                break
            record = records.get(key)
            if record is not None:
                yield record

    def next_version(self) -> int:
        """Reserve the resource version of the next write (call with the lock held)."""
        self.resource_version += 1
        return self.resource_version

    def put(self, store_key: str, obj: dict[str, Any], change_type: str) -> None:
        """Store `obj`, whose resourceVersion the caller set from next_version()."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            bucket = self._bucket(store_key)
            previous = bucket.records.get(key)
            if previous is None:
                bisect.insort(bucket.order, key)
            bucket.records[key] = Record(obj)
            old = previous.obj if previous else None
            self._record(change_type, store_key, key[0], obj, old)

    def remove(self, store_key: str, obj: dict[str, Any]) -> None:
        """Remove an object; `obj` is its last state with a new resourceVersion."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            bucket = self._bucket(store_key)
            removed = bucket.records.pop(key, None)
            if removed is None:
                return
            index = bisect.bisect_left(bucket.order, key)
            del bucket.order[index]
            self._record("DELETED", store_key, key[0], obj, removed.obj)

    def _record(
        self,
        change_type: str,
        store_key: str,
        namespace: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> None:
        seq = self.history_start + len(self.history)
        version = int(obj["metadata"]["resourceVersion"])
        change = Change(seq, version, change_type, store_key, namespace, obj, previous)
        self.history.append(change)
        if len(self.history) > 2 * self.history_size:
            dropped = len(self.history) - self.history_size
            self.compacted_version = self.history[dropped - 1].resource_version
            del self.history[:dropped]
            self.history_start += dropped
        self.changed.notify_all()

    def states_at(self, store_key: str, version: int) -> dict[Key, dict[str, Any] | None]:
        """Return the state at `version` of each object changed since then.

        None means the object did not exist then. Objects missing from the result are
        the same now as they were then. The caller checks that `version` is not older
        than `oldest_version()`.
        """
        with self.lock:
            start = self.position_after(version) - self.history_start
            changes = self.history[start:]
        states: dict[Key, dict[str, Any] | None] = {}
        for change in changes:
            if change.store_key != store_key:
                continue
            key = (change.namespace, change.obj["metadata"]["name"])
            if key not in states:
                states[key] = None if change.type == "ADDED" else change.previous
        return states

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until the resource version reaches `version`."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.resource_version < version and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return self.resource_version >= version

    def oldest_version(self) -> int:
        """The oldest resource version a watch can still start from."""
        return self.compacted_version

    def position_after(self, resource_version: int) -> int:
        """Return the history position of the first change newer than `resource_version`."""
        with self.lock:
            versions = [change.resource_version for change in self.history]
            index = bisect.bisect_right(versions, resource_version)
            return self.history_start + index

    def end_position(self) -> int:
        with self.lock:
            return self.history_start + len(self.history)

    def changes_since(
        self, position: int, timeout: float, epoch: int
    ) -> tuple[list[Change], int, bool, int]:
        """Wait up to `timeout` seconds for changes at or after `position`.

        Return the changes, the next position, whether the position was compacted away
        meanwhile (the watcher fell too far behind), and the resource version up to
        which the returned changes are complete (safe for a bookmark). After a clear
        (a new `epoch`) nothing more is returned.
        """
        with self.lock:
            end = self.history_start + len(self.history)
            if position >= end and not self.closed:
                self.changed.wait(timeout)
                end = self.history_start + len(self.history)
            if epoch != self.epoch:
                return [], position, False, self.resource_version
            if position < self.history_start:
                return [], position, True, self.resource_version
            changes = self.history[position - self.history_start :]
            return changes, end, False, self.resource_version
