"""The `kubestash` command: sync, preview, render, serve and demo.

Exit codes: 0 when everything synced, 1 when a key, a Secret or the sync failed (or the
mass-deletion guard blocked it), 2 when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import botocore.exceptions
import kubernetes

from renderer.settings import SettingError, Settings, add_flags, flags_from_args

if TYPE_CHECKING:
    from renderer.kube import KubeClient
    from renderer.result import SyncResult
    from renderer.sync import Syncer

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    settings_parent = argparse.ArgumentParser(add_help=False)
    add_flags(settings_parent)
    kube_parent = argparse.ArgumentParser(add_help=False)
    kube_parent.add_argument(
        "--kubeconfig", help="kubeconfig file (default: KUBECONFIG, then ~/.kube/config)"
    )
    kube_parent.add_argument("--context", help="kubeconfig context (default: the current one)")

    parser = argparse.ArgumentParser(
        prog="kubestash",
        description="Keep Kubernetes Secrets in step with a credstash table.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser(
        "sync", parents=[settings_parent, kube_parent], help="run one full sync and exit"
    )
    sync.add_argument("--output", choices=("text", "json"), default="text", help="summary format")
    sync.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="remove keys even when more than MAX_DELETE_RATIO of them would go",
    )

    preview = commands.add_parser(
        "preview",
        parents=[settings_parent, kube_parent],
        help="show what a sync would add, change and remove (a dry run)",
    )
    preview.add_argument("--output", choices=("text", "json"), default="text")

    render = commands.add_parser(
        "render", parents=[settings_parent], help="print the table's Secrets as YAML"
    )
    render.add_argument("--format", choices=("secret", "shell", "externalsecret"), default="secret")
    render.add_argument(
        "--webhook-url",
        default="http://kubestash.kubestash.svc:8080",
        help="base URL of kubestash for the externalsecret format",
    )

    serve = commands.add_parser("serve", parents=[settings_parent], help="run the service")
    serve.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default: every address)"
    )
    demo = commands.add_parser(
        "demo", parents=[settings_parent], help="run kubestash against local stand-ins"
    )
    demo.add_argument("--once", action="store_true", help="sync once, print the result and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(os.environ, flags_from_args(args))
    except SettingError as exc:
        print(f"kubestash: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from renderer.logs import setup_logging

    setup_logging(settings)
    if args.command in ("sync", "preview"):
        return run_sync(settings, args)
    if args.command == "render":
        return run_render(settings, args)
    if args.command == "serve":
        from renderer.service import run

        kube = open_kube_client(settings)
        if kube is None:
            return EXIT_CONFIG
        kube.close()
        return run(settings, host=args.host)
    from renderer.demo import run_demo

    return run_demo(settings, once=args.once)


def open_kube_client(
    settings: Settings, *, kubeconfig: str | None = None, context: str | None = None
) -> KubeClient | None:
    """Return a Kubernetes client, or print why there is none and return None."""
    from renderer.kube import KubeClient

    try:
        return KubeClient(settings, kubeconfig=kubeconfig, context=context)
    except (kubernetes.config.ConfigException, OSError) as exc:
        print(
            f"kubestash: no usable Kubernetes configuration ({exc}); "
            "set KUBECONFIG or --kubeconfig, or run in a pod",
            file=sys.stderr,
        )
        return None


def run_sync(settings: Settings, args: argparse.Namespace) -> int:
    from renderer.sync import Syncer

    kube = open_kube_client(settings, kubeconfig=args.kubeconfig, context=args.context)
    if kube is None:
        return EXIT_CONFIG

    syncer = Syncer(settings, kube=kube)
    if args.command == "preview":
        result = syncer.full_sync(trigger="cli", dry_run=True)
        if args.output == "json":
            print(json.dumps({**result.to_dict(), "preview": result.preview}, indent=2))
        else:
            print(preview_text(result.preview))
            print(result.summary_text())
        return result.exit_code

    result = syncer.full_sync(trigger="cli", allow_mass_delete=args.allow_mass_delete)
    record_events(kube, syncer, result)
    if args.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary_text())
    return result.exit_code


def record_events(kube: KubeClient, syncer: Syncer, result: SyncResult) -> None:
    """Write the Events of one sync through the same rate-limited recorder as the service."""
    from renderer.events import EventRecorder

    if result.dry_run:
        return
    recorder = EventRecorder(
        kube.api_client, dry_run=False, request_timeout=syncer.settings.http_timeout
    )
    recorder.start()
    recorder.record_sync(result)
    recorder.record_invalid_names(syncer.index.invalid())
    if not recorder.wait_idle(timeout=30):
        logger.warning("not every Event of sync %s was written in time", result.sync_id)
    recorder.stop()


def preview_text(preview: list[dict]) -> str:
    if not preview:
        return "No changes: every Secret is in step with the table."
    lines = []
    for secret in preview:
        lines.append(f"{secret['namespace']}/{secret['name']} ({secret['action']})")
        for label, field in (("+", "keys_added"), ("~", "keys_changed"), ("-", "keys_removed")):
            for key in secret[field]:
                lines.append(f"  {label} {key}")
    return "\n".join(lines)


def run_render(settings: Settings, args: argparse.Namespace) -> int:
    from renderer.render import render

    try:
        text = render(settings, args.format, webhook_url=args.webhook_url)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"kubestash: reading table {settings.ddb_table} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(text)
    return EXIT_OK
