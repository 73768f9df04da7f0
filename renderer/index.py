"""The table index: the latest item of every credstash name, with its plaintext.

Full syncs rebuild it from a Scan (`refresh_index`), stream records update single names.
A name whose latest version fails to decrypt keeps the last good plaintext it had, so the
Secret keeps that value instead of losing the key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from renderer import metrics
from renderer.decrypt import Decrypted, Decryptor, DecryptStats
from renderer.names import Outcome, ParsedName, SecretRef, parse_name
from renderer.source import CredstashTable, Item, ScanResult

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """The latest item of one OK name and its plaintext, or why it failed."""

    parsed: ParsedName
    item: Item
    plaintext: str | None = field(default=None, repr=False)
    error: str = ""
    last_good: str | None = field(default=None, repr=False)


@dataclass
class NameCounts:
    ok: int = 0
    ignored: int = 0
    invalid: int = 0
    excluded: int = 0


class TableIndex:
    """The latest item per credstash name with its plaintext; thread-safe.

    A stream record can arrive while a full sync scans. Each update bumps a generation
    counter, and a scan result never overwrites a name that changed after the scan began,
    because that change is newer than what the scan read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._invalid: dict[str, ParsedName] = {}
        self._generation = 0
        self._touched: dict[str, int] = {}
        self.counts = NameCounts()

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def replace(
        self,
        parsed: Iterable[ParsedName],
        decrypted: Mapping[str, Decrypted],
        *,
        since: int,
    ) -> None:
        """Replace the index from a full scan that began at generation `since`."""
        with self._lock:
            entries: dict[str, Entry] = {}
            invalid: dict[str, ParsedName] = {}
            counts = NameCounts()
            for name in parsed:
                setattr(counts, name.outcome.value, getattr(counts, name.outcome.value) + 1)
                if name.outcome is Outcome.INVALID:
                    invalid[name.name] = name
                if name.outcome is Outcome.OK:
                    entries[name.name] = self._entry(name, decrypted[name.name])

            for name, generation in self._touched.items():
                if generation <= since:
                    continue
                streamed = self._entries.get(name)
                scanned = entries.get(name)
                if streamed is None:
                    # REMOVE records re-read the table with a consistent Query, so the
                    # removal is newer than what the scan read.
                    entries.pop(name, None)
                elif scanned is None or streamed.item.version >= scanned.item.version:
                    entries[name] = streamed
            self._entries = entries
            self._invalid = invalid
            self.counts = counts
            self._touched = {n: g for n, g in self._touched.items() if g > since}

    def update(self, name: str, parsed: ParsedName, result: Decrypted | None) -> None:
        """Set one OK name from a stream record; `result` None means no version is left."""
        with self._lock:
            self._generation += 1
            self._touched[name] = self._generation
            if result is None:
                self._entries.pop(name, None)
                return
            self._entries[name] = self._entry(parsed, result)

    def _entry(self, parsed: ParsedName, result: Decrypted) -> Entry:
        previous = self._entries.get(parsed.name)
        last_good = result.plaintext
        if last_good is None and previous is not None:
            last_good = previous.plaintext if previous.plaintext is not None else previous.last_good
        return Entry(parsed, result.item, result.plaintext, result.error, last_good)

    def get(self, name: str) -> Entry | None:
        with self._lock:
            return self._entries.get(name)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def items(self) -> list[Item]:
        with self._lock:
            return [entry.item for entry in self._entries.values()]

    def invalid(self) -> list[ParsedName]:
        with self._lock:
            return list(self._invalid.values())

    def refs(self) -> set[SecretRef]:
        with self._lock:
            return {entry.parsed.ref for entry in self._entries.values()}


@dataclass
class RefreshReport:
    """Scan result, name counts and decrypt statistics of one full refresh."""

    scan: ScanResult
    counts: NameCounts
    decrypt: DecryptStats


def refresh_index(
    index: TableIndex,
    table: CredstashTable,
    decryptor: Decryptor,
    *,
    excluded: frozenset[str],
    sync_id: str,
    on_step: Callable[[str], None] | None = None,
) -> RefreshReport:
    """Scan the table, classify the names, decrypt the OK ones and replace the index.

    `on_step` is called with "decrypt" when the Scan is done. Raises the botocore error of a
    failed Scan, leaving the index as it was.
    """
    since = index.generation()
    try:
        scan = table.scan()
    except Exception:
        metrics.table_fetch_status.set(1)
        raise
    metrics.table_fetch_status.set(0)
    metrics.ddb_fetch_seconds.observe(scan.seconds)

    parsed = [parse_name(name, excluded) for name in sorted(scan.items)]
    counts = _count_names(parsed)
    logger.info(
        "sync %s scan: %d items, %d names (%d ignored, %d invalid, %d excluded), "
        "%d Scan segments in %.2f s",
        sync_id,
        scan.rows,
        len(parsed),
        counts.ignored,
        counts.invalid,
        counts.excluded,
        scan.segments,
        scan.seconds,
    )

    if on_step is not None:
        on_step("decrypt")
    started = time.monotonic()
    ok = [name for name in parsed if name.outcome is Outcome.OK]
    items = [scan.items[name.name] for name in ok]
    decrypted, stats = decryptor.decrypt_many(items)
    index.replace(parsed, decrypted, since=since)
    # Retained after the replace, so a version a stream record brought in keeps its plaintext.
    decryptor.retain(index.items())
    _log_failures(ok, decrypted)
    logger.info(
        "sync %s decrypt: %d items, %d from cache, %d decrypted with KMS, %d failed in %.2f s",
        sync_id,
        stats.items,
        stats.cache_hits,
        stats.decrypted,
        stats.failed,
        time.monotonic() - started,
    )
    return RefreshReport(scan, counts, stats)


def _count_names(parsed: list[ParsedName]) -> NameCounts:
    counts = NameCounts()
    for name in parsed:
        setattr(counts, name.outcome.value, getattr(counts, name.outcome.value) + 1)
        if name.outcome is Outcome.INVALID:
            logger.warning("credstash name %r skipped: %s", name.name, name.reason)
        elif name.outcome is not Outcome.OK:
            logger.debug("credstash name %r skipped: %s", name.name, name.reason)
    metrics.invalid_keys.set(counts.invalid)
    return counts


def _log_failures(ok: list[ParsedName], decrypted: Mapping[str, Decrypted]) -> None:
    for name in ok:
        outcome = decrypted[name.name]
        if not outcome.ok:
            logger.warning(
                "Key %s of Secret %s (credstash name %r, version %s) failed: %s",
                name.key,
                name.ref,
                name.name,
                outcome.item.version,
                outcome.error,
            )
