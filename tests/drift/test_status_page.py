"""The HTML status page, rendered by the Starlette route and loaded in headless Chromium.

Set KUBESTASH_SCREENSHOT to a path to keep the screenshot (the README's picture comes from
`KUBESTASH_SCREENSHOT=docs/status-page.png`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from renderer.page import build_context, render_status_page, status_page_route
from renderer.testing.aws import free_port

from .support import NAMESPACE, SECRET, TABLE_VALUES, b64, drift_gauge, wait_for

CHROMIUM = "/usr/bin/chromium"
EDITED_VALUE = "edited-by-hand-c4e1"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


class TableRows(HTMLParser):
    """Text of each table row of a page, one list of cell texts per row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def chromium(*args: str, profile: Path) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def serve() -> Iterator:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Starlette) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_for(lambda: server.started, timeout=10, message="uvicorn did not start")
        return f"http://127.0.0.1:{port}/"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def service_status(result, *, dry_run: bool) -> dict:
    """The /status JSON of a service that ran one sync and reads one shard."""
    return {
        "env": "stage",
        "cluster_name": "eu-test-1",
        "dry_run": dry_run,
        "ready": True,
        "healthy": True,
        "leader": {"enabled": True, "is_leader": True, "holder": "kubestash-0"},
        "syncs": {
            "active": True,
            "ready": True,
            "running": None,
            "pending_secrets": [],
            "next_full_sync_in_seconds": 10740.0,
            "history": [result.to_dict()],
        },
        "stream": {
            "stream_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/credential-store/stream/x",
            "positioned": True,
            "shards": [
                {
                    "shard_id": "shardId-00000001700000000000-4f2a1b3c",
                    "parent_shard_id": None,
                    "status": "reading",
                    "sequence_number": "4900000000000000000000000001",
                    "records": 3,
                    "lag_seconds": 0.4,
                    "restarts": 0,
                    "last_error": None,
                }
            ],
        },
    }


def test_status_page_shows_drifting_key(syncer, start_monitor, kubectl, serve, tmp_path):
    result = syncer.full_sync(trigger="startup")
    monitor = start_monitor()
    monitor.on_sync(result)
    patch = json.dumps({"data": {"API_KEY": b64(EDITED_VALUE)}})
    kubectl("patch", "secret", SECRET, "-n", NAMESPACE, "--type", "merge", "-p", patch)
    wait_for(lambda: drift_gauge("API_KEY") == 1, timeout=2, message="no drift")
    status = service_status(result, dry_run=False)
    app = Starlette(routes=[status_page_route(lambda: build_context(status, monitor.snapshot()))])
    url = serve(app)

    dom = chromium("--dump-dom", url, profile=tmp_path / "profile")
    screenshot = tmp_path / "status-page.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1280,720", url, profile=tmp_path / "p2")

    parser = TableRows()
    parser.feed(dom)
    assert [NAMESPACE, SECRET, "API_KEY", "drift"] in [row[:4] for row in parser.rows]
    assert "value differs; field manager kubectl-patch" in dom
    for value in [*TABLE_VALUES.values(), EDITED_VALUE]:
        assert value not in dom
        assert b64(value) not in dom
    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("KUBESTASH_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)


def test_status_page_shows_dry_run_preview(syncer, serve, tmp_path):
    result = syncer.full_sync(trigger="startup", dry_run=True)
    summary_status = service_status(result, dry_run=True)
    summary_status["syncs"]["history"][0]["preview"] = result.preview
    app = Starlette(routes=[status_page_route(lambda: build_context(summary_status))])

    dom = chromium("--dump-dom", serve(app), profile=tmp_path / "profile")

    parser = TableRows()
    parser.feed(dom)
    assert "Dry run: every write is sent with dryRun=All" in dom
    assert [NAMESPACE, SECRET, "create", "API_KEY, DB_PASSWORD"] in [r[:4] for r in parser.rows]
    for value in TABLE_VALUES.values():
        assert value not in dom


def test_page_escapes_markup():
    context = build_context(
        {"env": "<b>stage</b>", "syncs": {"history": [{"trigger": "render", "error": "<i>x"}]}}
    )

    html = render_status_page(context)

    assert "<b>stage</b>" not in html
    assert "&lt;b&gt;stage&lt;/b&gt;" in html
    assert "<i>x" not in html


def test_page_loads_no_external_assets():
    html = render_status_page(build_context({"env": "stage"}))

    parser = HTMLParser()
    links: list[str] = []
    parser.handle_starttag = lambda tag, attrs: links.extend(  # type: ignore[method-assign]
        value for name, value in attrs if name in ("src", "href") and value
    )
    parser.feed(html)
    assert links == ["status", "metrics", "config"]
    assert '<meta http-equiv="refresh" content="15">' in html


def test_page_lists_skipped_secret(syncer, seeded):
    seeded.put("absent/app/TOKEN", "token-for-another-cluster")
    status = service_status(syncer.full_sync(trigger="startup"), dry_run=False)

    html = render_status_page(build_context(status))

    parser = TableRows()
    parser.feed(html)
    rows = [row[:4] for row in parser.rows]
    assert ["absent", "app", "(whole Secret)", "skipped"] in rows
    assert "token-for-another-cluster" not in html
