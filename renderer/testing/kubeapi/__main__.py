"""Run the Kubernetes API test server until SIGTERM or Ctrl-C.

    python -m renderer.testing.kubeapi --port 0 --kubeconfig /tmp/kubeconfig

Prints the server URL on stdout once it listens.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .server import KubeAPIServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m renderer.testing.kubeapi",
        description="Kubernetes API test server on 127.0.0.1 (plain HTTP, state in memory).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server to this path")
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on idle watches (default 60, as kube-apiserver)",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=50_000,
        help="changes kept for watches that resume from a resource version",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = KubeAPIServer(
        port=args.port, history_size=args.history_size, bookmark_interval=args.bookmark_interval
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server.start()
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    print(server.url, flush=True)
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
