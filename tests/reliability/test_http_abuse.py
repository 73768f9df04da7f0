"""The HTTP API under abuse: bad methods, huge bodies and headers, malformed query strings,
concurrent sync requests and slow clients. The server must stay responsive and respond to
each with a 4xx or a normal response, never a 5xx, and a rejected request starts no sync.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from renderer.settings import RateLimit

from .processes import ServiceThread
from .support import wait_until
from .web import BEARER, Web, assert_nothing_leaked

METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "FOO"]
PATHS = ["/render", "/syncnow", "/metrics", "/healthz", "/status", "/config", "/"]


def test_bad_methods_are_rejected(web: Web, service: ServiceThread) -> None:
    before = web.syncs(service)
    codes = {}
    for method in METHODS:
        for path in PATHS:
            answer = web.keep(service.http.request(method, path, headers=BEARER))
            codes[(method, path)] = answer.status_code

    assert {key: code for key, code in codes.items() if code not in (400, 404, 405)} == {}
    assert web.keep(service.http.post("/syncnow", headers=BEARER)).status_code == 405
    assert web.keep(service.http.get("/render", headers=BEARER)).status_code == 405
    assert web.syncs(service) == before
    assert web.keep(service.http.get("/metrics")).status_code == 200


def raw_request(service: ServiceThread, data: bytes, *, timeout: float = 5) -> bytes:
    """Send raw bytes and return whatever comes back before the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", service.service.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            # The server gave up on the request before all of it was sent.
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0


REJECTED = range(400, 500)
ANSWERED = (200, *range(400, 500))

# Raw requests, and the status codes allowed for each. h11 (under uvicorn) parses a header
# block that arrives whole and rejects one that is still incomplete beyond 16 KiB, so memory
# stays bounded. A request that h11 can parse may get a normal response.
BROKEN_REQUESTS = {
    "content-length-10GB": (
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n",
        REJECTED,
    ),
    "content-length-1MiB+1": (
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
        REJECTED,
    ),
    "content-length-negative": (
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        REJECTED,
    ),
    "content-length-text": (
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        REJECTED,
    ),
    "header-100kB": (
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 100_000 + "\r\n\r\n",
        ANSWERED,
    ),
    "header-4MB-unfinished": (
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 4_000_000,
        REJECTED,
    ),
    "headers-5000": (
        "GET /metrics HTTP/1.1\r\nHost: x\r\n" + "X-Many: 1\r\n" * 5000 + "\r\n",
        ANSWERED,
    ),
    "path-100kB": ("GET /" + "a" * 100_000 + " HTTP/1.1\r\nHost: x\r\n\r\n", REJECTED),
    "bad-version": ("GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", (*ANSWERED, 505)),
    "garbage": ("\x00\x01\x02 garbage\r\n\r\n", REJECTED),
}


@pytest.mark.parametrize("case", sorted(BROKEN_REQUESTS))
def test_broken_requests_are_contained(web: Web, service: ServiceThread, case: str) -> None:
    request_head, allowed = BROKEN_REQUESTS[case]
    before = web.syncs(service)

    raw = raw_request(service, request_head.encode("latin-1"))

    assert raw == b"" or status_of(raw) in allowed, raw[:200]
    assert web.syncs(service) == before
    assert web.keep(service.http.get("/metrics")).status_code == 200


def test_streamed_huge_body_is_cut(web: Web, service: ServiceThread) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 65536

    try:
        answer = service.http.post("/render", headers=BEARER, content=body())
        code = web.keep(answer).status_code
    except httpx.TransportError:
        code = 0
    assert code in (0, 202, 413)
    assert web.keep(service.http.get("/healthz")).status_code == 200


MALFORMED_QUERIES = [
    "%zz",
    "=",
    "wait",
    "wait=true=true",
    "wait=%00",
    "wait%00=true",
    "wait[]=true",
    "wait=true;dry_run=true",
    "dry_run=TRUE&dry_run=true",
    "allow_mass_delete=2",
    "wait=tru%C3%A9",
    "%F0%9F%94%91=true",
    "wait=" + "t" * 60_000,
    "x=" + "%" * 1000,
]


def short_id(text: str) -> str:
    return text if len(text) <= 30 else f"{text[:10]}...{len(text)}-chars"


@pytest.mark.parametrize("query", MALFORMED_QUERIES, ids=short_id)
def test_malformed_query_is_400_without_sync(web: Web, service: ServiceThread, query: str) -> None:
    before = web.syncs(service)

    answer = web.keep(service.http.post(f"/render?{query}", headers=BEARER))

    assert answer.status_code == 400
    assert "error" in answer.json()
    assert web.syncs(service) == before


def test_concurrent_renders_coalesce(web: Web, service: ServiceThread) -> None:
    # A slow Secret list keeps the first sync running while the other requests arrive.
    web.kubeapi.faults.add(
        {"verb": "list", "path": "/secrets$", "action": "delay", "delay_seconds": 1}
    )
    before = web.syncs(service)

    with ThreadPoolExecutor(24) as pool:
        answers = list(
            pool.map(
                lambda _: web.keep(service.http.post("/render?wait=true", headers=BEARER)),
                range(24),
            )
        )

    assert [answer.status_code for answer in answers] == [200] * 24
    sync_ids = {answer.json()["sync_id"] for answer in answers}
    assert len(sync_ids) <= 2
    assert web.syncs(service) - before == len(sync_ids)
    assert all(answer.json()["result"] == "success" for answer in answers)


def test_concurrent_renders_over_limit_get_429(web: Web) -> None:
    running = web.start(render_rate_limit=RateLimit(1, 600))

    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: web.keep(running.http.post("/render", headers=BEARER)), range(16))
        )

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202] + [429] * 15
    limited = [answer for answer in answers if answer.status_code == 429]
    assert all(0 < int(answer.headers["Retry-After"]) <= 600 for answer in limited)


def test_slow_clients_do_not_block_others(web: Web, service: ServiceThread) -> None:
    port = service.service.port
    open_sockets: list[socket.socket] = []
    try:
        for number in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            # Half a request line, half of a header block, or a body that never comes.
            partial = [
                b"GET /metr",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                b"POST /render HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",
            ][number % 3]
            sock.sendall(partial)
            open_sockets.append(sock)
        reader = socket.create_connection(("127.0.0.1", port), timeout=5)
        reader.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        open_sockets.append(reader)

        for path in ("/metrics", "/healthz", "/status", "/readyz"):
            assert web.keep(service.http.get(path)).status_code == 200
    finally:
        for sock in open_sockets:
            sock.close()


def test_metrics_answer_while_a_sync_is_stuck(web: Web, service: ServiceThread) -> None:
    web.kubeapi.faults.add(
        {"verb": "list", "path": "/secrets$", "action": "delay", "delay_seconds": 2}
    )
    started = web.keep(service.http.post("/render", headers=BEARER))
    assert started.status_code == 202
    wait_until(lambda: service.http.get("/status").json()["syncs"]["running"])

    for _ in range(10):
        assert web.keep(service.http.get("/metrics")).status_code == 200
        assert web.keep(service.http.get("/status")).status_code == 200
        assert web.keep(service.http.get("/")).status_code == 200
    wait_until(lambda: service.http.get("/status").json()["syncs"]["running"] is None)


def test_no_response_carries_a_value(web: Web, service: ServiceThread) -> None:
    assert_nothing_leaked(web, service)
