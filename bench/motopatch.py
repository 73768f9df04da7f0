"""Give moto's DynamoDB Query and Scan the cost DynamoDB has: proportional to what they return.

moto 5.2 sorts every item of the table for each Query, then keeps those of the requested
partition key. For each Scan page it sorts the whole table again and walks it from the
start up to ExclusiveStartKey. A Query thus costs time in proportion to the table size,
and a Scan pass grows with its square. DynamoDB reads one partition for a Query and
resumes a Scan where the last page ended. Without this patch, a contender that sends one
Query per name (kubestash 2.0.2) pays moto's cost and not its own.

The patch changes which items moto's own `Table.query` and `Table.scan` look at, never
how they build an answer: a Query sees only the items of its partition key, and a Scan
page that resumes after ExclusiveStartKey sees only the items after that key. It applies
to tables whose hash and range keys are both strings (credstash tables are). Everything
else goes through moto unchanged. tests/bench/test_motopatch.py compares the answers with
and without the patch.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

from moto.dynamodb.models.table import Table

_view = threading.local()
_original_all_items = Table.all_items
_original_query = Table.query
_original_scan = Table.scan


def _string_keys(table: Table) -> bool:
    return table.range_key_type == "S" and table.hash_key_type == "S"


def _sort_key(item: Any) -> tuple[str, str]:
    return (item.hash_key.value, item.range_key.value)


def _all_items(self: Table) -> list[Any]:
    """Return the items moto's query or scan should walk, in moto's order."""
    partition = getattr(_view, "partition", None)
    if partition is not None:
        return sorted(self.items.get(partition, {}).values(), key=_sort_key)

    after = getattr(_view, "after", None)
    if after is not None:
        items = sorted(
            (item for versions in self.items.values() for item in versions.values()),
            key=_sort_key,
        )
        start = bisect.bisect_right(items, after, key=_sort_key)
        return items[start:]
    return _original_all_items(self)


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is not None or hash_key is None or not _string_keys(self):
        return _original_query(self, hash_key, *args, **kwargs)
    _view.partition = hash_key
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _view.partition = None


def _scan(
    self: Table, filters: Any, limit: Any, exclusive_start_key: Any, *args: Any, **kwargs: Any
) -> Any:
    index_name = args[1] if len(args) > 1 else kwargs.get("index_name")
    usable = (
        exclusive_start_key
        and index_name is None
        and _string_keys(self)
        and self.hash_key_attr in exclusive_start_key
        and self.range_key_attr in exclusive_start_key
    )
    if not usable:
        return _original_scan(self, filters, limit, exclusive_start_key, *args, **kwargs)
    _view.after = (
        exclusive_start_key[self.hash_key_attr]["S"],
        exclusive_start_key[self.range_key_attr]["S"],
    )
    try:
        return _original_scan(self, filters, limit, exclusive_start_key, *args, **kwargs)
    finally:
        _view.after = None


def apply() -> None:
    Table.all_items = _all_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.scan = _scan  # type: ignore[method-assign]


def remove() -> None:
    Table.all_items = _original_all_items  # type: ignore[method-assign]
    Table.query = _original_query  # type: ignore[method-assign]
    Table.scan = _original_scan  # type: ignore[method-assign]
