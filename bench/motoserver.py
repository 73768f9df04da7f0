"""moto's server with a request counter, run as a child process on 127.0.0.1.

moto does not expose which requests it served, and a counting proxy in front of it would
add one more HTTP hop to every call of every contender. Wrapping moto's own WSGI app adds
no hop: the middleware reads the operation name from each request and counts it before
moto handles it. Counts are read with `GET /_bench/requests`.

DynamoDB Query and Scan pages are made to cost time in proportion to what they return, as
on DynamoDB, by bench.motopatch (`--no-patch` leaves moto as it is).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from bench import motopatch

COUNTS_PATH = "/_bench/requests"


APP_ID = re.compile(r"\bapp/(\S+)")


class CountingMiddleware:
    """Count requests by client and AWS operation, as "APP DynamoDB_20120810.Scan".

    The client is the `app/NAME` part that botocore adds to the User-Agent when
    AWS_SDK_UA_APP_ID is set; requests without one count under "-".
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]

        operation = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", "other")
        match = APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
        key = f"{match[1] if match else '-'} {operation}"
        with self.lock:
            self.counts[key] += 1
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server that counts requests")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks one")
    parser.add_argument("--no-patch", action="store_true", help="leave moto's Query and Scan as is")
    args = parser.parse_args(argv)
    if not args.no_patch:
        motopatch.apply()

    # werkzeug logs every request at INFO; at thousands of requests a second that is a
    # measurable part of moto's own time.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", args.port, CountingMiddleware(app), threaded=True)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
