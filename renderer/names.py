"""credstash names: parse `namespace/secret/KEY`, classify them and resolve KEY collisions.

A credstash table is often shared with other tools, so a name that is not three parts long
is simply not for kubestash (ignored). A three-part name that cannot become a Kubernetes
Secret key is a mistake worth a warning (invalid).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

logger = logging.getLogger(__name__)

# Kubernetes object name rules (DNS-1123), as in k8s.io/apimachinery validation.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253

# The raw KEY part may only use ASCII letters, digits and the three characters that become
# "_". Checking the raw text first matters: str.upper() maps some non-ASCII letters to ASCII
# ("ſ" becomes "S"), which would let a look-alike name pass the check on the result.
RAW_KEY = re.compile(r"[A-Za-z0-9_.&-]+")
NORMAL_KEY = re.compile(r"[A-Z0-9_]+")
KEY_MAX = 253
KEY_SEPARATORS = str.maketrans({".": "_", "&": "_", "-": "_"})


class Outcome(enum.Enum):
    OK = "ok"
    IGNORED = "ignored"
    INVALID = "invalid"
    EXCLUDED = "excluded"


class SecretRef(NamedTuple):
    """A Secret by namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ParsedName:
    """A credstash name and what kubestash makes of it.

    `namespace`, `secret` and `key` are set for OK names (and for EXCLUDED ones as far as
    they are known); `reason` explains an IGNORED, INVALID or EXCLUDED outcome.
    """

    name: str
    outcome: Outcome
    namespace: str = ""
    secret: str = ""
    key: str = ""
    reason: str = ""

    @property
    def ref(self) -> SecretRef:
        return SecretRef(self.namespace, self.secret)

    @property
    def is_normal_form(self) -> bool:
        """True when the KEY part is written exactly as the Secret key it becomes."""
        return self.name.rsplit("/", 1)[-1] == self.key


def normalize_key(raw: str) -> str:
    return raw.translate(KEY_SEPARATORS).upper()


def parse_name(name: str, excluded: Iterable[str] = ()) -> ParsedName:
    """Classify one credstash name; `excluded` holds the namespaces never touched."""
    parts = name.split("/")
    if len(parts) != 3:
        return ParsedName(name, Outcome.IGNORED, reason="not in namespace/secret/KEY form")

    namespace, secret, raw_key = parts
    if namespace in excluded:
        return ParsedName(
            name,
            Outcome.EXCLUDED,
            namespace=namespace,
            secret=secret,
            reason=f"namespace {namespace!r} is in NAMESPACE_EXCLUDE_FILTER",
        )

    problem = _namespace_problem(namespace) or _secret_problem(secret) or _key_problem(raw_key)
    if problem:
        return ParsedName(name, Outcome.INVALID, reason=problem)
    return ParsedName(name, Outcome.OK, namespace, secret, normalize_key(raw_key))


def _namespace_problem(namespace: str) -> str:
    if not namespace:
        return "the namespace part is empty"
    if len(namespace) > LABEL_MAX or not DNS1123_LABEL.fullmatch(namespace):
        return (
            f"namespace {namespace!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    return ""


def _secret_problem(secret: str) -> str:
    if not secret:
        return "the Secret name part is empty"
    if len(secret) > SUBDOMAIN_MAX or not DNS1123_SUBDOMAIN.fullmatch(secret):
        return (
            f"Secret name {secret!r} is not a DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    return ""


def _key_problem(raw_key: str) -> str:
    if not raw_key:
        return "the KEY part is empty"
    if not RAW_KEY.fullmatch(raw_key):
        return (
            f"KEY {raw_key!r} contains characters other than letters, digits, '_', '.', '&' and '-'"
        )
    key = normalize_key(raw_key)
    if len(key) > KEY_MAX or not NORMAL_KEY.fullmatch(key):
        return (
            f"KEY {raw_key!r} becomes {key!r}, which is not a valid key of at most 253 characters"
        )
    return ""


@dataclass(frozen=True, slots=True)
class Collision:
    """Several credstash names that become the same key of one Secret."""

    ref: SecretRef
    key: str
    winner: str
    losers: tuple[str, ...]


def pick_winner(names: Iterable[ParsedName]) -> ParsedName:
    """Choose which of several names for one Secret key is used.

    The name already in normal form wins, otherwise the smallest name in Python string
    order. The choice depends only on the set of names, so it never flaps between syncs.
    """
    candidates = sorted(names, key=lambda parsed: parsed.name)
    for parsed in candidates:
        if parsed.is_normal_form:
            return parsed
    return candidates[0]


def resolve_collisions(
    names: Iterable[ParsedName],
) -> tuple[dict[tuple[SecretRef, str], ParsedName], list[Collision]]:
    """Map each (Secret, KEY) to the one OK name that provides it, and list the collisions."""
    groups: dict[tuple[SecretRef, str], list[ParsedName]] = {}
    for parsed in names:
        if parsed.outcome is Outcome.OK:
            groups.setdefault((parsed.ref, parsed.key), []).append(parsed)

    chosen: dict[tuple[SecretRef, str], ParsedName] = {}
    collisions: list[Collision] = []
    for (ref, key), group in groups.items():
        winner = pick_winner(group)
        chosen[(ref, key)] = winner
        if len(group) > 1:
            losers = tuple(sorted(p.name for p in group if p.name != winner.name))
            collisions.append(Collision(ref, key, winner.name, losers))
    return chosen, collisions
