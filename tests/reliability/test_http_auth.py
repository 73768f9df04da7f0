"""Authentication: POST /render, the old GET /syncnow and the External Secrets webhook
cannot be reached without their key or token, whatever the request looks like.
"""

from __future__ import annotations

import json

from renderer.settings import RateLimit

from .processes import ServiceThread
from .web import API_KEY, BEARER, WEBHOOK_TOKEN, Web, assert_nothing_leaked

# Requests that must never start a sync; (method, path, headers).
RENDER_BYPASSES: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/render", {}),
    ("POST", "/render", {"Authorization": "Bearer"}),
    ("POST", "/render", {"Authorization": f"Basic {API_KEY}"}),
    ("POST", "/render", {"Authorization": f"Token {API_KEY}"}),
    ("POST", "/render", {"Authorization": f"Bearer {API_KEY[:-1]}"}),
    ("POST", "/render", {"Authorization": f"Bearer {API_KEY}x"}),
    ("POST", "/render", {"Authorization": f"Bearer {API_KEY.upper()}"}),
    ("POST", "/render", {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}),
    ("POST", "/render", {"API-Key": ""}),
    ("POST", "/render", {"API-Key": API_KEY[:8]}),
    ("POST", "/render", {"X-API-Key": API_KEY}),
    ("POST", "/render", {"Cookie": f"api-key={API_KEY}"}),
    ("POST", f"/render?api_key={API_KEY}", {}),
    ("POST", "/render", {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}),
    ("GET", "/syncnow", {}),
    ("GET", "/syncnow", {"API-Key": "wrong"}),
    ("GET", f"/syncnow?API-Key={API_KEY}", {}),
    ("HEAD", "/syncnow", {}),
    ("POST", "/syncnow", {}),
    ("GET", "/render", {}),
    ("POST", "/render/", {}),
    ("POST", "//render", {}),
    ("POST", "/Render", {}),
    ("POST", "/render%2F", {}),
    ("POST", "/./render", {}),
    ("GET", "/v1/secrets/../../syncnow", {}),
]


def test_render_cannot_be_reached_without_key(web: Web) -> None:
    running = web.start(render_rate_limit=RateLimit(1000, 60))
    before = web.syncs(running)

    codes = {}
    for method, path, headers in RENDER_BYPASSES:
        answer = web.keep(running.http.request(method, path, headers=headers))
        codes[(method, path, json.dumps(headers))] = answer.status_code

    assert {k: code for k, code in codes.items() if code < 300 or code >= 500} == {}
    assert web.syncs(running) == before


def test_failed_key_limit_ignores_forwarded_address(web: Web) -> None:
    running = web.start()
    for _ in range(10):
        web.keep(running.http.post("/render", headers={"API-Key": "guess"}))

    spoofed = {"API-Key": "guess", "X-Forwarded-For": "203.0.113.7", "Forwarded": "for=1.2.3.4"}
    answer = web.keep(running.http.post("/render", headers=spoofed))

    assert answer.status_code == 429
    assert web.keep(running.http.post("/render", headers=BEARER)).status_code == 202


WEBHOOK_BYPASSES: list[tuple[str, dict[str, str]]] = [
    ("/v1/secrets/team/app", {}),
    ("/v1/secrets/team/app", {"Authorization": "Bearer"}),
    ("/v1/secrets/team/app", {"Authorization": f"Bearer {API_KEY}"}),
    ("/v1/secrets/team/app", {"Authorization": f"Basic {WEBHOOK_TOKEN}"}),
    ("/v1/secrets/team/app", {"Authorization": f"Bearer {WEBHOOK_TOKEN[:-1]}"}),
    ("/v1/secrets/team/app", {"Authorization": f"Bearer {WEBHOOK_TOKEN}0"}),
    ("/v1/secrets/team/app", {"API-Key": WEBHOOK_TOKEN}),
    (f"/v1/secrets/team/app?token={WEBHOOK_TOKEN}", {}),
    ("/v1/secrets/team/app/", {}),
    ("/v1/secrets//team/app", {}),
    ("/v1/secrets/team%2Fapp", {}),
    ("/V1/secrets/team/app", {"Authorization": f"Bearer {API_KEY}"}),
]


def test_webhook_needs_its_token(web: Web, service: ServiceThread) -> None:
    for path, headers in WEBHOOK_BYPASSES:
        answer = web.keep(service.http.get(path, headers=headers))
        assert answer.status_code in (307, 401, 403, 404, 405), (path, headers)
        for value in web.values.plaintexts:
            assert value not in answer.text

    right = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    served = service.http.get("/v1/secrets/team/app", headers=right)
    assert served.status_code == 200
    assert set(served.json()) == {"PASSWORD", "API_KEY"}
    excluded = web.keep(service.http.get("/v1/secrets/kube-system/app", headers=right))
    assert excluded.status_code == 403


def test_webhook_is_off_without_token(web: Web) -> None:
    running = web.start(webhook_token=None)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}):
        answer = web.keep(running.http.get("/v1/secrets/team/app", headers=headers))
        assert answer.status_code == 404


def test_no_response_carries_a_value(web: Web, service: ServiceThread) -> None:
    assert_nothing_leaked(web, service)
