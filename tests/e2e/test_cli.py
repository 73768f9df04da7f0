"""The `kubestash` command end to end, the real credstash CLI, and what output never shows."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

VALUES = {
    "test/app/DB_PASSWORD": "Pl41n-P@ssw0rd!",
    "test/app/api.token": "tok_9f8e7d6c5b4a",
    "test/other/KEY": "another-plain-value",
    "prod/app/SECRET": "pr0d-s3cret-value",
}


def kubestash(env: dict[str, str], *args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "renderer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_sync_command_prints_summary(credstash_table, cli_env, kubectl):
    credstash_table.put("test/mysecret/TEST_KEY", "$ecreT")

    completed = kubestash(cli_env, "sync")

    assert completed.returncode == 0, completed.stderr
    assert "success" in completed.stdout
    assert "test/mysecret" in completed.stdout
    assert kubectl.secret("test", "mysecret")["data"]["TEST_KEY"] == "JGVjcmVU"


def test_sync_command_json_output(credstash_table, cli_env, kubectl):
    credstash_table.put("test/mysecret/TEST_KEY", "$ecreT")

    completed = kubestash(cli_env, "sync", "--output", "json")

    report = json.loads(completed.stdout)
    assert completed.returncode == 0
    assert report["result"] == "success"
    assert report["secrets"][0]["keys_added"] == ["TEST_KEY"]


def test_sync_command_exit_one_on_failed_key(credstash_table, cli_env, kubectl):
    credstash_table.put("test/app/A", "x", context={"app": "other"})

    completed = kubestash(cli_env, "sync", "--output", "json")

    assert completed.returncode == 1
    assert json.loads(completed.stdout)["result"] == "partial"


def test_sync_command_exit_two_on_bad_setting(cli_env):
    completed = kubestash({**cli_env, "DRY_RUN": "sometimes"}, "sync")

    assert completed.returncode == 2
    assert "DRY_RUN" in completed.stderr
    assert "sometimes" in completed.stderr


def test_sync_command_exit_two_without_kubeconfig(cli_env, tmp_path):
    env = {**cli_env, "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}

    completed = kubestash(env, "sync")

    assert completed.returncode == 2
    assert "KUBECONFIG" in completed.stderr


def test_preview_command_lists_keys(credstash_table, cli_env, kubectl):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b"})

    completed = kubestash(cli_env, "preview", "--output", "json")

    report = json.loads(completed.stdout)
    assert completed.returncode == 0
    assert report["dry_run"] is True
    assert report["preview"][0]["keys_added"] == ["A", "B"]
    assert kubectl.secret("test", "app") is None


def test_real_credstash_cli_fills_table(credstash_table, cli_env, kubectl, tmp_path):
    put = subprocess.run(
        [
            "credstash",
            "-r",
            credstash_table.region,
            "-t",
            credstash_table.table,
            "put",
            "-a",
            "test/from-cli/db.host",
            "cli-value",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert put.returncode == 0, put.stderr

    completed = kubestash(cli_env, "sync")

    assert completed.returncode == 0, completed.stderr
    secret = kubectl.secret("test", "from-cli")
    assert base64.b64decode(secret["data"]["DB_HOST"]).decode() == "cli-value"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_value_in_any_output(credstash_table, cli_env, kubectl, log_format):
    credstash_table.put_many(VALUES)
    credstash_table.put("test/app/FAILING", "f41led-value", context={"app": "other"})
    credstash_table.put("test/Bad/KEY", "inval1d-value")
    env = {**cli_env, "VERBOSE": "true", "LOG_FORMAT": log_format}

    outputs = [
        kubestash(env, "preview"),
        kubestash(env, "preview", "--output", "json"),
        kubestash(env, "sync"),
        kubestash(env, "sync", "--output", "json"),
        kubestash(env, "sync"),
        kubestash(env, "render", "--format", "shell"),
        kubestash(env, "render", "--format", "externalsecret"),
    ]

    text = "\n".join(o.stdout + o.stderr for o in outputs)
    assert "sync" in text
    for value in [*VALUES.values(), "f41led-value", "inval1d-value"]:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
    assert kubectl.secret("test", "app") is not None
