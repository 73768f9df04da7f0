"""Log set-up: text and JSON lines with env and cluster labels, DEBUG only when VERBOSE."""

from __future__ import annotations

import io
import json
import logging

import pytest

from renderer.logs import setup_logging
from renderer.settings import Settings


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_labels(restore_root):
    stream = io.StringIO()
    setup_logging(Settings(log_format="json", env="prod", cluster_name="eu-1"), stream)

    logging.getLogger("renderer.sync").info("sync %s scan: %d items", "abc", 3)

    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "sync abc scan: 3 items"
    assert line["level"] == "INFO"
    assert line["env"] == "prod"
    assert line["cluster"] == "eu-1"
    assert line["name"] == "renderer.sync"


def test_text_lines_carry_labels(restore_root):
    stream = io.StringIO()
    setup_logging(Settings(env="stage", cluster_name="c1"), stream)

    logging.getLogger("renderer.sync").warning("Secret %s skipped", "test/app")

    text = stream.getvalue()
    assert "WARNING renderer.sync: Secret test/app skipped" in text
    assert "env=stage cluster=c1" in text


def test_verbose_enables_debug(restore_root):
    stream = io.StringIO()
    setup_logging(Settings(verbose=True), stream)

    logging.getLogger("renderer.sync").debug("details")

    assert "details" in stream.getvalue()


def test_debug_hidden_without_verbose(restore_root):
    stream = io.StringIO()
    setup_logging(Settings(), stream)

    logging.getLogger("renderer.sync").debug("details")

    assert stream.getvalue() == ""


def test_client_libraries_stay_quiet_when_verbose(restore_root):
    stream = io.StringIO()
    setup_logging(Settings(verbose=True), stream)

    for name in ("botocore.endpoint", "urllib3.connectionpool", "kubernetes.client.rest"):
        logging.getLogger(name).debug("body: secret data")

    assert stream.getvalue() == ""


def test_second_setup_replaces_first_handler(restore_root):
    first, second = io.StringIO(), io.StringIO()
    setup_logging(Settings(), first)
    setup_logging(Settings(), second)

    logging.getLogger("renderer").info("once")

    assert first.getvalue() == ""
    assert "once" in second.getvalue()
