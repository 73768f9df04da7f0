"""The HTTP API: authentication, rate limits, sync requests, probes and metrics."""

from __future__ import annotations

import pytest

from .conftest import API_KEY, Stack
from .harness import RunningService, wait_until

BEARER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def running(stack: Stack) -> RunningService:
    stack.create_namespace("team")
    stack.table.put("team/app/PASSWORD", "p1")
    service = stack.service(variables={"RENDER_RATE_LIMIT": "2 per 10 minutes"})
    wait_until(lambda: service.http.get("/readyz").status_code == 200)
    return service


def test_render_without_key_is_401(running: RunningService) -> None:
    answer = running.http.post("/render")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_render_with_wrong_key_is_403(running: RunningService) -> None:
    assert running.http.post("/render", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert running.http.post("/render", headers={"API-Key": "nope"}).status_code == 403


def test_render_accepts_then_limits(running: RunningService) -> None:
    accepted = running.http.post("/render", headers=BEARER)
    assert accepted.status_code == 202
    assert accepted.json()["request_id"]

    waited = running.http.post("/render?wait=true", headers={"API-Key": API_KEY})
    assert waited.status_code == 200
    assert waited.json()["result"] == "success"
    assert waited.json()["trigger"] == "render"

    limited = running.http.post("/render", headers=BEARER)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 600


def test_wrong_key_flood_does_not_block_right_key(running: RunningService) -> None:
    codes = [
        running.http.post("/render", headers={"API-Key": "guess"}).status_code for _ in range(15)
    ]
    assert codes[0] == 403
    assert codes[-1] == 429

    assert running.http.post("/render", headers=BEARER).status_code == 202


def test_syncnow_follows_render_rules(running: RunningService) -> None:
    assert running.http.get("/syncnow").status_code == 401
    assert running.http.get("/syncnow", headers={"API-Key": API_KEY}).status_code == 202


def test_dry_run_returns_preview(stack: Stack, running: RunningService) -> None:
    stack.table.put("team/app/NEW_KEY", "n1")

    answer = running.http.post("/render?dry_run=true", headers=BEARER)

    assert answer.status_code == 200
    [entry] = answer.json()["preview"]
    assert entry["keys_added"] == ["NEW_KEY"]
    assert "n1" not in answer.text
    assert "NEW_KEY" not in (stack.secret_data("team", "app") or {})


@pytest.mark.parametrize("query", ["wait=maybe", "dry_run=2", "force=true", "wait=true&wait=false"])
def test_bad_query_is_400(running: RunningService, query: str) -> None:
    answer = running.http.post(f"/render?{query}", headers=BEARER)
    assert answer.status_code == 400
    assert query.split("=")[0] in answer.json()["error"]


def test_render_without_configured_key_is_rejected(stack: Stack) -> None:
    service = stack.service(variables={"KUBESTASH_API_KEY": ""})
    assert service.http.post("/render").status_code == 401
    answer = service.http.post("/render", headers={"API-Key": "anything"})
    assert answer.status_code == 403
    assert "KUBESTASH_API_KEY" in answer.json()["error"]


def test_request_body_over_limit_is_413(running: RunningService) -> None:
    answer = running.http.post("/render", headers=BEARER, content=b"x" * (1024 * 1024 + 1))
    assert answer.status_code == 413


def test_probes_config_and_status(running: RunningService) -> None:
    assert running.http.get("/healthz").status_code == 200
    assert running.http.get("/readyz").status_code == 200

    config = running.http.get("/config").json()
    assert config["KUBESTASH_API_KEY"] == "<set>"
    assert API_KEY not in running.http.get("/config").text

    status = running.http.get("/status").json()
    assert status["dry_run"] is False
    assert status["leader"]["is_leader"] is True
    assert status["syncs"]["history"][0]["trigger"] == "startup"
    assert status["syncs"]["history"][0]["counts"]
    assert status["stream"]["shards"][0]["shard_id"]
    assert "p1" not in running.http.get("/status").text


def test_metrics_count_requests_by_route(running: RunningService) -> None:
    running.http.get("/healthz")
    running.http.get("/no/such/page")
    text = running.http.get("/metrics").text
    assert 'kubestash_http_requests_total{code="200",handler="/healthz",method="GET"}' in text
    assert 'kubestash_http_requests_total{code="404",handler="other",method="GET"}' in text
    assert "/no/such/page" not in text


def test_unknown_methods_share_one_series(running: RunningService) -> None:
    for method in ("FOO1", "FOO2", "BREW"):
        running.http.request(method, "/status")

    text = running.http.get("/metrics").text

    assert "FOO1" not in text
    assert "BREW" not in text
    assert 'handler="/status",method="other"' in text


def test_render_accepts_yes_and_no(running: RunningService) -> None:
    answer = running.http.post("/render?wait=yes&dry_run=no", headers=BEARER)

    assert answer.status_code == 200
    assert answer.json()["trigger"] == "render"


def test_standby_rejects_render(stack: Stack) -> None:
    leader = stack.service(variables={"LEADER_ELECTION": "true", "POD_NAME": "first"})
    wait_until(lambda: leader.http.get("/status").json()["leader"]["is_leader"])
    standby = stack.service(variables={"LEADER_ELECTION": "true", "POD_NAME": "second"})
    wait_until(lambda: standby.http.get("/readyz").status_code == 200)

    answer = standby.http.post("/render", headers=BEARER)
    assert answer.status_code == 503
    assert "first" in answer.json()["error"]
