"""Decryption of credstash items, with an in-memory plaintext cache.

Decryption uses credstash's own KeyService and open_aes_ctr_legacy, so every digest that
credstash supports works and the format cannot drift from the library that wrote it.
An unchanged item (same name, version and encrypted material) is never sent to KMS twice.
"""

from __future__ import annotations

import binascii
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import boto3
import botocore.exceptions
import credstash
from botocore.config import Config

from renderer import metrics
from renderer.settings import Settings
from renderer.source import Item

logger = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Decrypted:
    """The outcome of decrypting one item: a plaintext or a reason it failed (never both)."""

    item: Item
    plaintext: str | None = field(repr=False)
    error: str = ""
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.plaintext is not None


class CountingKeyService(credstash.KeyService):
    """credstash's KeyService, counting each KMS Decrypt call by result."""

    def decrypt(self, encoded_key: bytes) -> bytes:
        try:
            plaintext = super().decrypt(encoded_key)
        except Exception:
            metrics.kms_decrypt_total.labels("error").inc()
            raise
        metrics.kms_decrypt_total.labels("success").inc()
        return plaintext


@dataclass
class DecryptStats:
    items: int = 0
    cache_hits: int = 0
    decrypted: int = 0
    failed: int = 0


class Decryptor:
    """Decrypts items through a cache, in a bounded thread pool; thread-safe."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None) -> None:
        session = session or boto3.Session()
        self.workers = settings.decrypt_workers
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max(self.workers, 10),
        )
        kms = session.client("kms", region_name=settings.table_region, config=config)
        # credstash passes an empty dict when no context is set, and so does kubestash.
        self.key_service = CountingKeyService(kms, None, dict(settings.credstash_context))
        self._cache: dict[CacheKey, str] = {}
        self._failures: dict[CacheKey, str] = {}
        self._lock = threading.Lock()

    def cached(self, item: Item) -> Decrypted | None:
        """Return the remembered outcome of this exact item, if any, without calling KMS."""
        key = _cache_key(item)
        with self._lock:
            plaintext = self._cache.get(key)
            error = self._failures.get(key)
        if plaintext is not None:
            return Decrypted(item, plaintext, cached=True)
        if error is not None:
            return Decrypted(item, None, error, cached=True)
        return None

    def decrypt(self, item: Item) -> Decrypted:
        """Decrypt one item through the cache; a failure is returned, never raised."""
        known = self.cached(item)
        if known is not None:
            metrics.decrypt_cache_hits_total.inc()
            return known

        error = _material_problem(item)
        if error:
            return self._remember_failure(item, error)
        try:
            plaintext = credstash.open_aes_ctr_legacy(self.key_service, item.material())
        except credstash.KmsError as exc:
            # Not remembered: KMS errors are often throttling or permissions, worth a retry.
            return Decrypted(item, None, f"KMS decrypt failed: {_kms_reason(exc)}")
        except botocore.exceptions.BotoCoreError as exc:
            return Decrypted(item, None, f"KMS request failed ({type(exc).__name__})")
        except credstash.IntegrityError:
            return self._remember_failure(item, "HMAC mismatch: the item was altered or corrupted")
        except UnicodeDecodeError:
            return self._remember_failure(item, "the decrypted value is not valid UTF-8")
        except (binascii.Error, ValueError) as exc:
            return self._remember_failure(item, f"the item is malformed ({type(exc).__name__})")

        with self._lock:
            self._cache[_cache_key(item)] = plaintext
        return Decrypted(item, plaintext)

    def _remember_failure(self, item: Item, error: str) -> Decrypted:
        """Remember a failure that the same material would always repeat (HMAC, UTF-8)."""
        with self._lock:
            self._failures[_cache_key(item)] = error
        return Decrypted(item, None, error)

    def decrypt_many(self, items: Iterable[Item]) -> tuple[dict[str, Decrypted], DecryptStats]:
        """Decrypt items by name: remembered ones at once, the rest in DECRYPT_WORKERS threads."""
        results: dict[str, Decrypted] = {}
        pending: list[Item] = []
        stats = DecryptStats()
        for item in items:
            stats.items += 1
            known = self.cached(item)
            if known is None:
                pending.append(item)
            else:
                results[item.name] = known
        stats.cache_hits = len(results)
        metrics.decrypt_cache_hits_total.inc(stats.cache_hits)

        if len(pending) == 1:
            results[pending[0].name] = self.decrypt(pending[0])
        elif pending:
            workers = min(self.workers, len(pending))
            with ThreadPoolExecutor(workers, thread_name_prefix="decrypt") as pool:
                for decrypted in pool.map(self.decrypt, pending):
                    results[decrypted.item.name] = decrypted

        stats.decrypted = len(pending)
        stats.failed = sum(1 for decrypted in results.values() if not decrypted.ok)
        return results, stats

    def retain(self, items: Iterable[Item]) -> None:
        """Drop cached plaintexts of versions that are no longer the latest in the table."""
        keep = {_cache_key(item) for item in items}
        with self._lock:
            self._cache = {key: value for key, value in self._cache.items() if key in keep}
            self._failures = {key: value for key, value in self._failures.items() if key in keep}

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache = {key: value for key, value in self._cache.items() if key[0] != name}
            self._failures = {key: value for key, value in self._failures.items() if key[0] != name}


def _cache_key(item: Item) -> CacheKey:
    return (item.name, item.version, item.fingerprint)


def _material_problem(item: Item) -> str:
    # An empty value encrypts to empty contents, which is a valid item; a data key or an
    # HMAC is never empty.
    missing = [field for field in ("key", "hmac") if not getattr(item, field)]
    if item.contents is None:
        missing.insert(0, "contents")
    if missing:
        return f"the item has no {', '.join(missing)} attribute"
    if item.digest not in credstash.HASHING_ALGORITHMS:
        return f"the item's digest {item.digest!r} is not one credstash supports"
    return ""


def _kms_reason(error: credstash.KmsError) -> str:
    # KmsError text carries the KMS error message (key ids, context hints), never plaintext.
    text = str(error).removeprefix("KMS ERROR: ")
    return text[:200]
