"""The same rules through kubectl 1.32: apply --server-side, patch, create, get, delete."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
import yaml
from kubeapi_support import KUBECTL


def _secret(cluster, namespace: str, name: str) -> dict:
    result = cluster.kubectl(
        "-n", namespace, "get", "secret", name, "-o", "json", "--show-managed-fields"
    )
    return json.loads(result.stdout)


def _manifest(namespace: str, name: str, data: dict[str, str], **meta) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }
    return yaml.safe_dump(document)


def test_create_secret_generic(cluster, namespace):
    result = cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "made", "--from-literal=KEY=value"
    )

    assert "secret/made created" in result.stdout
    secret = _secret(cluster, namespace, "made")
    assert secret["data"] == {"KEY": base64.b64encode(b"value").decode()}
    entry = secret["metadata"]["managedFields"][0]
    assert entry["manager"] == "kubectl-create"
    assert entry["fieldsV1"] == {"f:data": {".": {}, "f:KEY": {}}, "f:type": {}}


def test_create_secret_twice_fails(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "dup", "--from-literal=A=1")
    result = cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "dup", "--from-literal=A=1", check=False
    )

    assert result.returncode != 0
    assert 'secrets "dup" already exists' in result.stderr


def test_apply_server_side_creates_and_prunes(cluster, namespace):
    manifest = _manifest(namespace, "ssa", {"A": "1", "B": "2"})
    first = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert "secret/ssa serverside-applied" in first.stdout

    cluster.kubectl(
        "apply", "--server-side", "-f", "-", stdin=_manifest(namespace, "ssa", {"A": "1"})
    )

    secret = _secret(cluster, namespace, "ssa")
    assert list(secret["data"]) == ["A"]
    assert secret["metadata"]["managedFields"][0]["manager"] == "kubectl"
    assert secret["metadata"]["managedFields"][0]["operation"] == "Apply"


def test_apply_server_side_conflict_and_force(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "c", "--from-literal=A=1")
    manifest = _manifest(namespace, "c", {"A": "2"})

    rejected = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest, check=False)
    assert rejected.returncode != 0
    assert 'conflict with "kubectl-create"' in rejected.stderr
    assert ".data.A" in rejected.stderr

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest)
    assert _secret(cluster, namespace, "c")["data"]["A"] == base64.b64encode(b"2").decode()


def test_apply_server_side_dry_run(cluster, namespace):
    manifest = _manifest(namespace, "dry", {"A": "1"})
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=manifest
    )

    assert "(server dry run)" in result.stdout
    missing = cluster.kubectl("-n", namespace, "get", "secret", "dry", check=False)
    assert missing.returncode != 0


def test_apply_server_side_rejects_unknown_field(cluster, namespace):
    manifest = _manifest(namespace, "bad", {"A": "1"}) + "spec: {}\n"
    result = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest, check=False)

    assert result.returncode != 0
    assert "spec" in result.stderr


@pytest.mark.parametrize(
    ("patch_type", "patch"),
    [
        ("strategic", '{"data":{"B":"Mg=="}}'),
        ("merge", '{"data":{"B":"Mg=="}}'),
        ("json", '[{"op":"add","path":"/data/B","value":"Mg=="}]'),
    ],
)
def test_patch_types(cluster, namespace, patch_type, patch):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "p", "--from-literal=A=1")
    result = cluster.kubectl(
        "-n", namespace, "patch", "secret", "p", "--type", patch_type, "-p", patch
    )

    assert "secret/p patched" in result.stdout
    secret = _secret(cluster, namespace, "p")
    assert secret["data"]["B"] == "Mg=="
    managers = {entry["manager"] for entry in secret["metadata"]["managedFields"]}
    assert "kubectl-patch" in managers


def test_get_yaml_shows_secret(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "y", "--from-literal=A=1")
    result = cluster.kubectl("-n", namespace, "get", "secret", "y", "-o", "yaml")

    secret = yaml.safe_load(result.stdout)
    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    assert "managedFields" not in secret["metadata"]


def test_get_table_columns(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "t", "--from-literal=A=1")
    result = cluster.kubectl("-n", namespace, "get", "secrets", "t")

    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert row.split()[:3] == ["t", "Opaque", "1"]


def test_get_with_label_selector(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "one", "--from-literal=A=1")
    cluster.kubectl("-n", namespace, "label", "secret", "one", "pick=yes")
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "two", "--from-literal=A=1")
    result = cluster.kubectl("-n", namespace, "get", "secrets", "-l", "pick=yes", "-o", "name")

    assert result.stdout.split() == ["secret/one"]


def test_delete_secret(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "d", "--from-literal=A=1")
    result = cluster.kubectl("-n", namespace, "delete", "secret", "d")

    assert 'secret "d" deleted' in result.stdout
    missing = cluster.kubectl("-n", namespace, "get", "secret", "d", check=False)
    assert 'secrets "d" not found' in missing.stderr


def test_edit_secret(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "e", "--from-literal=A=1")
    editor = "sed -i -e 's/^  A: .*/  A: Mg==/'"
    command = [
        KUBECTL,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "-n",
        namespace,
        "edit",
        "secret",
        "e",
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "KUBE_EDITOR": editor},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert _secret(cluster, namespace, "e")["data"]["A"] == "Mg=="


def test_get_watch_prints_events(cluster, namespace):
    command = [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    command += ["get", "secrets", "-w", "--output-watch-events"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cluster.kubectl("-n", namespace, "create", "secret", "generic", "w1", "--from-literal=A=1")
        lines = []
        for line in process.stdout:
            lines.append(line.split())
            if line.split()[:2] == ["ADDED", "w1"]:
                break
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert ["EVENT", "NAME", "TYPE", "DATA", "AGE"] in lines
    assert lines[-1][:4] == ["ADDED", "w1", "Opaque", "1"]
