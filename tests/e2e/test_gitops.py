"""Argo CD's view: Secrets from `kubestash render --format shell`, then kubestash's data."""

from __future__ import annotations

import base64
import subprocess
import sys


def managers(secret: dict) -> dict[str, set[str]]:
    """Return, per field manager, the top-level fields it owns under metadata and data."""
    owned: dict[str, set[str]] = {}
    for entry in secret["metadata"].get("managedFields", []):
        fields = entry.get("fieldsV1", {})
        names = set(fields.get("f:data", {})) | set(fields.get("f:metadata", {}))
        owned.setdefault(entry["manager"], set()).update(names)
    return owned


def test_shell_render_then_sync_shares_one_object(credstash_table, cli_env, kubectl):
    credstash_table.put("test/app/PASSWORD", "s3cret-gitops")
    rendered = subprocess.run(
        [sys.executable, "-m", "renderer", "render", "--format", "shell"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "s3cret-gitops" not in rendered.stdout

    kubectl.run(
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "-f",
        "-",
        stdin=rendered.stdout,
    )
    synced = subprocess.run(
        [sys.executable, "-m", "renderer", "sync"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    resynced = subprocess.run(
        [sys.executable, "-m", "renderer", "sync"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert synced.returncode == 0, synced.stderr
    assert resynced.returncode == 0, resynced.stderr
    secret = kubectl.secret("test", "app")
    assert base64.b64decode(secret["data"]["PASSWORD"]).decode() == "s3cret-gitops"
    owners = managers(secret)
    assert "f:labels" in owners["argocd-controller"]
    assert "f:PASSWORD" in owners["kubestash"]
    assert "f:PASSWORD" not in owners["argocd-controller"]
    assert "conflict" not in (synced.stdout + synced.stderr).lower()
    listed = kubectl.run("get", "secrets", "-n", "test", "-o", "name").stdout.split()
    assert listed.count("secret/app") == 1
