"""Desired state: the table's latest items grouped into the Secrets kubestash should write.

`desired_secrets` turns the entries of the table index (renderer.index) into
`DesiredSecret`s: one per Secret, with base64 data, failed keys and KEY collisions resolved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from renderer.index import Entry
from renderer.names import Collision, SecretRef, resolve_collisions

logger = logging.getLogger(__name__)

# The API server rejects a Secret whose data (keys plus decoded values) exceeds 1 MiB.
MAX_SECRET_BYTES = 1024 * 1024


def checksum(data: Mapping[str, str]) -> str:
    """sha256 of the data (KEY to base64 value) as JSON with sorted keys, in hex."""
    text = json.dumps(dict(sorted(data.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode(plaintext: str) -> str:
    return base64.b64encode(plaintext.encode()).decode()


def secret_size(data: Mapping[str, str]) -> int:
    """Size as the API server counts it: each key plus its decoded value."""
    return sum(len(key) + len(base64.b64decode(value)) for key, value in data.items())


@dataclass
class DesiredSecret:
    """One Secret as the table describes it.

    `data` maps KEY to base64 value. A failed key appears in `failed` with its reason, and
    in `data` only when an earlier version decrypted (its last good value). `sources` maps
    KEY to the credstash name that provides it.
    """

    ref: SecretRef
    data: dict[str, str] = field(default_factory=dict, repr=False)
    failed: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    collisions: list[Collision] = field(default_factory=list)

    @property
    def keys(self) -> set[str]:
        return set(self.sources)

    @property
    def checksum(self) -> str:
        return checksum(self.data)

    @property
    def size(self) -> int:
        return secret_size(self.data)

    @property
    def size_error(self) -> str:
        size = self.size
        if size <= MAX_SECRET_BYTES:
            return ""
        return (
            f"the Secret would hold {size} bytes, more than the 1 MiB ({MAX_SECRET_BYTES} bytes) "
            "Kubernetes allows; split its keys over several Secrets"
        )


def desired_secrets(
    entries: Iterable[Entry], refs: Iterable[SecretRef] | None = None
) -> dict[SecretRef, DesiredSecret]:
    """Group entries into Secrets, resolving KEY collisions; only `refs` when given."""
    wanted = set(refs) if refs is not None else None
    by_name: dict[str, Entry] = {}
    for entry in entries:
        if wanted is None or entry.parsed.ref in wanted:
            by_name[entry.parsed.name] = entry

    chosen, collisions = resolve_collisions(entry.parsed for entry in by_name.values())
    secrets: dict[SecretRef, DesiredSecret] = {}
    for (ref, key), parsed in sorted(chosen.items()):
        secret = secrets.setdefault(ref, DesiredSecret(ref))
        entry = by_name[parsed.name]
        secret.sources[key] = parsed.name
        if entry.plaintext is not None:
            secret.data[key] = encode(entry.plaintext)
            continue
        secret.failed[key] = entry.error or "decryption failed"
        if entry.last_good is not None:
            secret.data[key] = encode(entry.last_good)

    for collision in collisions:
        secrets[collision.ref].collisions.append(collision)
    return secrets
