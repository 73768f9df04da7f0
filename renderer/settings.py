"""Settings: one object built from environment variables and CLI flags, validated at start.

Every setting has an environment variable (the old service's name where it had one) and a
matching CLI flag. Parsing is written here rather than taken from a settings library because
the accepted spellings are part of the contract: booleans take exactly true/false/1/0/yes/no,
so that "false" can never mean true again.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STREAM_ARN = re.compile(
    r"^arn:aws[-a-z]*:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/.+$"
)
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")

TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
RATE_LIMIT = re.compile(
    r"^\s*(?P<count>\d+)\s*(?:per|/)\s*(?P<amount>\d+)?\s*(?P<unit>second|minute|hour|day)s?\s*$"
)


class SettingError(ValueError):
    """A setting has a value kubestash cannot use; the message names the fix."""


@dataclass(frozen=True)
class RateLimit:
    """At most `count` calls in any window of `period_seconds`."""

    count: int
    period_seconds: float

    def __str__(self) -> str:
        return f"{self.count} per {self.period_seconds:g} seconds"


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingError(f"{name} has value {raw!r}, which is not a boolean; use true or false.")


def parse_number(
    name: str,
    raw: str,
    *,
    minimum: float,
    maximum: float = math.inf,
    integer: bool = False,
) -> float | int:
    kind = "a whole number" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise SettingError(
            f"{name} has value {raw!r}, which is not {kind}; use {kind} of at least {minimum:g}."
        ) from None
    if not math.isfinite(value):
        raise SettingError(f"{name} has value {raw!r}, which is not a finite number; use {kind}.")
    if value < minimum or value > maximum:
        raise SettingError(
            f"{name} has value {raw!r}; use {kind} from {minimum:g} to {maximum:g}."
            if maximum != math.inf
            else f"{name} has value {raw!r}; it must be at least {minimum:g}."
        )
    return value


def parse_rate_limit(name: str, raw: str) -> RateLimit:
    match = RATE_LIMIT.match(raw.lower())
    if not match:
        raise SettingError(
            f"{name} has value {raw!r}, which is not a rate; write it as '1 per 10 minutes'."
        )
    count = int(match["count"])
    amount = int(match["amount"] or 1)
    if count < 1 or amount < 1:
        raise SettingError(f"{name} has value {raw!r}; both numbers must be at least 1.")
    return RateLimit(count, amount * PERIOD_SECONDS[match["unit"]])


def parse_namespaces(name: str, raw: str) -> frozenset[str]:
    names = {part.strip() for part in raw.split("|") if part.strip()}
    for namespace in names:
        if not DNS1123_LABEL.match(namespace) or len(namespace) > 63:
            raise SettingError(
                f"{name} contains {namespace!r}, which is not a namespace name; "
                "separate exact namespace names with '|'."
            )
    return frozenset(names)


def parse_context(name: str, raw: str) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SettingError(
                f"{name} has pair {pair!r} without a key; write it as 'key=value,key=value'."
            )
        if key.strip() in context:
            raise SettingError(
                f"{name} has value {raw!r}, which sets key {key.strip()!r} twice; "
                "use each encryption context key once."
            )
        context[key.strip()] = value.strip()
    return context


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    word = raw.strip().lower()
    if word not in choices:
        raise SettingError(f"{name} has value {raw!r}; use one of {', '.join(choices)}.")
    return word


def parse_pattern(name: str, raw: str, pattern: re.Pattern[str], fix: str) -> str:
    if raw and not pattern.match(raw):
        raise SettingError(f"{name} has value {raw!r}; {fix}")
    return raw


@dataclass(frozen=True)
class Option:
    """One setting: its attribute, environment variable, default text and parser."""

    attribute: str
    variable: str
    default: str
    parse: Callable[[str, str], Any]
    help: str
    secret: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.variable.lower().replace("_", "-")


def _number(
    minimum: float, maximum: float = math.inf, integer: bool = False
) -> Callable[[str, str], float | int]:
    return lambda name, raw: parse_number(
        name, raw, minimum=minimum, maximum=maximum, integer=integer
    )


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _optional_text(name: str, raw: str) -> str | None:
    return raw or None


OPTIONS: tuple[Option, ...] = (
    Option("env", "ENV", "stage", _text, "environment label for logs, metrics and the page"),
    Option("cluster_name", "CLUSTER_NAME", "", _text, "cluster label for logs and metrics"),
    Option(
        "ddb_table",
        "DDB_TABLE",
        "credential-store",
        lambda n, r: parse_pattern(
            n, r, TABLE_NAME, "use a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)."
        ),
        "credstash DynamoDB table",
    ),
    Option(
        "table_region",
        "TABLE_REGION",
        "ap-south-1",
        lambda n, r: parse_pattern(n, r, REGION, "use an AWS region name such as 'eu-west-1'."),
        "AWS region of the table",
    ),
    Option(
        "stream_arn",
        "STREAM_ARN",
        "",
        lambda n, r: parse_pattern(
            n, r, STREAM_ARN, "it is not a DynamoDB stream ARN; leave it empty to discover it."
        ),
        "DynamoDB stream ARN; empty to discover it from the table",
    ),
    Option("stream_enabled", "STREAM_ENABLED", "true", parse_bool, "read the DynamoDB stream"),
    Option(
        "namespace_exclude",
        "NAMESPACE_EXCLUDE_FILTER",
        "kube-system|kubestash-v2|kubestash",
        parse_namespaces,
        "'|'-separated namespaces that are never read or written",
    ),
    Option(
        "wait_time", "WAIT_TIME", "120", _number(0, 86400), "debounce seconds after a stream record"
    ),
    Option(
        "cron_hours", "CRON_HOURS", "3", _number(0.001, 8760), "hours between scheduled full syncs"
    ),
    Option("verbose", "VERBOSE", "false", parse_bool, "log at DEBUG level"),
    Option("dry_run", "DRY_RUN", "true", parse_bool, "send every write with dryRun=All"),
    Option(
        "http_timeout", "HTTP_TIMEOUT", "15", _number(0.1, 3600), "seconds per Kubernetes request"
    ),
    Option(
        "sync_timeout",
        "CREDSTASH_SYNC_TIMEOUT_SECS",
        "300",
        _number(1, 86400),
        "seconds after which a running sync is abandoned",
    ),
    Option(
        "render_rate_limit",
        "RENDER_RATE_LIMIT",
        "1 per 10 minutes",
        parse_rate_limit,
        "authenticated /render calls allowed, as 'N per M minutes'",
    ),
    Option(
        "api_key",
        "KUBESTASH_API_KEY",
        "",
        _optional_text,
        "key required by POST /render",
        secret=True,
        aliases=("FLASK_API_KEY",),
    ),
    Option(
        "webhook_token",
        "WEBHOOK_TOKEN",
        "",
        _optional_text,
        "bearer token for the External Secrets webhook; empty turns it off",
        secret=True,
    ),
    Option("prune", "PRUNE", "false", parse_bool, "delete Secrets that kubestash emptied"),
    Option(
        "max_delete_ratio",
        "MAX_DELETE_RATIO",
        "0.5",
        lambda n, r: _ratio(n, r),
        "largest share of managed keys one sync may remove (0 to 1)",
    ),
    Option(
        "credstash_context",
        "CREDSTASH_CONTEXT",
        "",
        parse_context,
        "KMS encryption context as 'key=value,key=value'",
    ),
    Option(
        "log_format",
        "LOG_FORMAT",
        "text",
        lambda n, r: parse_choice(n, r, ("text", "json")),
        "log format: text or json",
    ),
    Option("port", "PORT", "8080", lambda n, r: _port(n, r), "the HTTP port (0 picks a free one)"),
    Option("leader_election", "LEADER_ELECTION", "false", parse_bool, "elect a leader on a Lease"),
    Option("lease_name", "LEASE_NAME", "kubestash", _text, "name of the leader-election Lease"),
    Option(
        "lease_namespace",
        "POD_NAMESPACE",
        "",
        _text,
        "namespace of the Lease; empty reads the pod's namespace, else 'default'",
    ),
    Option("pod_name", "POD_NAME", "", _text, "identity in the Lease; empty uses the hostname"),
    Option(
        "decrypt_workers", "DECRYPT_WORKERS", "16", _number(1, 256, integer=True), "KMS threads"
    ),
    Option(
        "apply_workers", "APPLY_WORKERS", "8", _number(1, 256, integer=True), "Kubernetes threads"
    ),
    Option(
        "scan_segments",
        "SCAN_SEGMENTS",
        "0",
        _number(0, 1_000_000, integer=True),
        "parallel Scan segments; 0 picks one segment per 1 MB of table",
    ),
)


def _ratio(name: str, raw: str) -> float:
    value = parse_number(name, raw, minimum=0)
    if value > 1:
        raise SettingError(f"{name} has value {raw!r}; use a fraction between 0 and 1.")
    return float(value)


def _port(name: str, raw: str) -> int:
    # 0 lets the operating system pick a free port, which tests and the demo use.
    return int(parse_number(name, raw, minimum=0, maximum=65535, integer=True))


@dataclass(frozen=True)
class Settings:
    """The effective settings of one kubestash process."""

    env: str = "stage"
    cluster_name: str = ""
    ddb_table: str = "credential-store"
    table_region: str = "ap-south-1"
    stream_arn: str = ""
    stream_enabled: bool = True
    namespace_exclude: frozenset[str] = frozenset({"kube-system", "kubestash-v2", "kubestash"})
    wait_time: float = 120.0
    cron_hours: float = 3.0
    verbose: bool = False
    dry_run: bool = True
    http_timeout: float = 15.0
    sync_timeout: float = 300.0
    render_rate_limit: RateLimit = RateLimit(1, 600)
    api_key: str | None = field(default=None, repr=False)
    webhook_token: str | None = field(default=None, repr=False)
    prune: bool = False
    max_delete_ratio: float = 0.5
    credstash_context: dict[str, str] = field(default_factory=dict)
    log_format: str = "text"
    port: int = 8080
    leader_election: bool = False
    lease_name: str = "kubestash"
    lease_namespace: str = ""
    pod_name: str = ""
    decrypt_workers: int = 16
    apply_workers: int = 8
    scan_segments: int = 0

    @classmethod
    def load(
        cls, environ: Mapping[str, str], flags: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Build settings from the environment, with CLI flags (by variable name) on top.

        Raises SettingError naming the first invalid setting.
        """
        flags = flags or {}
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = flags.get(option.variable)
            if raw is None:
                raw = _from_environ(environ, option)
            values[option.attribute] = option.parse(option.variable, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """Return every setting by variable name, with secret ones shown only as set or unset."""
        shown: dict[str, Any] = {}
        for option in OPTIONS:
            value = getattr(self, option.attribute)
            if option.secret:
                shown[option.variable] = "<set>" if value else "<unset>"
            elif isinstance(value, frozenset):
                shown[option.variable] = "|".join(sorted(value))
            elif isinstance(value, RateLimit):
                shown[option.variable] = str(value)
            elif isinstance(value, dict):
                shown[option.variable] = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
            else:
                shown[option.variable] = value
        return shown


def _from_environ(environ: Mapping[str, str], option: Option) -> str:
    for variable in (option.variable, *option.aliases):
        if variable in environ:
            return environ[variable]
    return option.default


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; a flag given on the command line wins over the environment."""
    group = parser.add_argument_group("settings (each also an environment variable)")
    for option in OPTIONS:
        group.add_argument(
            option.flag,
            dest=f"setting_{option.variable}",
            metavar="VALUE",
            default=None,
            help=f"{option.help} [{option.variable}, default {option.default!r}]",
        )


def flags_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        option.variable: getattr(args, f"setting_{option.variable}", None) for option in OPTIONS
    }
