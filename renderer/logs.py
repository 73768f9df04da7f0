"""Logging set-up: text or JSON lines on stderr, each carrying the env and cluster labels.

The HTTP and AWS client libraries stay at WARNING even with VERBOSE=true, because their
DEBUG output contains request and response bodies: Secret data and KMS data keys.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from renderer.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s [env=%(env)s cluster=%(cluster)s]"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(env)s %(cluster)s"
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "kubernetes", "credstash", "s3transfer")


class LabelFilter(logging.Filter):
    """Add `env` and `cluster` to every record."""

    def __init__(self, env: str, cluster: str) -> None:
        super().__init__()
        self.env = env
        self.cluster = cluster

    def filter(self, record: logging.LogRecord) -> bool:
        record.env = self.env
        record.cluster = self.cluster
        return True


def setup_logging(settings: Settings, stream=None) -> logging.Handler:
    """Send all logs to `stream` (stderr by default) in LOG_FORMAT; return the handler.

    Calling it again replaces the handler of the earlier call and keeps any other handler.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(LabelFilter(settings.env, settings.cluster_name))
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "kubestash", False):
            root.removeHandler(old)
    handler.kubestash = True
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if settings.verbose else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
