"""The External Secrets webhook provider endpoint, against a synced table."""

from __future__ import annotations

import pytest

from .conftest import Stack
from .harness import RunningService, wait_until

TOKEN = "webhook-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def running(stack: Stack) -> RunningService:
    stack.create_namespace("team")
    stack.table.put("team/app/PASSWORD", "hunter2")
    stack.table.put("team/app/db.host", "db.internal")
    stack.table.put("kube-system/app/KEY", "never served")
    service = stack.service(
        variables={"WEBHOOK_TOKEN": TOKEN, "NAMESPACE_EXCLUDE_FILTER": "kube-system"}
    )
    wait_until(lambda: service.http.get("/readyz").status_code == 200)
    return service


def test_webhook_returns_keys_as_json(running: RunningService) -> None:
    answer = running.http.get("/v1/secrets/team/app", headers=AUTH)

    assert answer.status_code == 200
    assert answer.json() == {"PASSWORD": "hunter2", "DB_HOST": "db.internal"}
    assert answer.headers["Cache-Control"] == "no-store"


def test_webhook_without_token_is_401(running: RunningService) -> None:
    answer = running.http.get("/v1/secrets/team/app")

    assert answer.status_code == 401
    assert "hunter2" not in answer.text


def test_webhook_with_wrong_token_is_403(running: RunningService) -> None:
    answer = running.http.get("/v1/secrets/team/app", headers={"Authorization": "Bearer nope"})

    assert answer.status_code == 403
    assert "hunter2" not in answer.text


def test_webhook_rejects_the_render_key(running: RunningService) -> None:
    render_key = {"Authorization": f"Bearer {running.service.settings.api_key}"}

    assert running.http.get("/v1/secrets/team/app", headers=render_key).status_code == 403
    assert running.http.get("/v1/secrets/team/app", headers={"API-Key": TOKEN}).status_code == 401


def test_webhook_unknown_secret_is_404(running: RunningService) -> None:
    assert running.http.get("/v1/secrets/team/other", headers=AUTH).status_code == 404
    assert running.http.get("/v1/secrets/nowhere/app", headers=AUTH).status_code == 404


def test_webhook_excluded_namespace_is_403(running: RunningService) -> None:
    answer = running.http.get("/v1/secrets/kube-system/app", headers=AUTH)

    assert answer.status_code == 403
    assert "never served" not in answer.text


def test_webhook_is_off_without_token(stack: Stack) -> None:
    stack.create_namespace("team")
    stack.table.put("team/app/PASSWORD", "hunter2")
    service = stack.service()
    wait_until(lambda: service.http.get("/readyz").status_code == 200)

    answer = service.http.get("/v1/secrets/team/app", headers=AUTH)

    assert answer.status_code == 404
    assert "hunter2" not in answer.text
