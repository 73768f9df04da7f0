"""`kubestash render`: YAML streams from the templates for a table in moto_server."""

from __future__ import annotations

import base64
import logging

import pytest
import yaml

from renderer.cli import main
from renderer.render import render
from renderer.settings import Settings


@pytest.fixture
def settings(credstash_table):
    credstash_table.put("test/app/DB_HOST", "db.internal")
    credstash_table.put("test/app/db.password", "pa$$")
    credstash_table.put("prod/web.front/KEY", "k")
    credstash_table.put("test/Bad/KEY", "invalid")
    credstash_table.put("kube-system/x/KEY", "excluded")
    credstash_table.put("plainname", "ignored")
    return Settings(ddb_table=credstash_table.table, table_region=credstash_table.region)


@pytest.fixture
def restore_root():
    """Undo the log handler that the kubestash command installs."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def by_name(documents):
    return {(doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for doc in documents}


def test_secret_format_has_base64_data(settings):
    documents = list(yaml.safe_load_all(render(settings, "secret")))
    secrets = by_name(documents)

    assert set(secrets) == {("test", "app"), ("prod", "web.front")}
    app = secrets[("test", "app")]
    assert app["kind"] == "Secret"
    assert app["type"] == "Opaque"
    assert base64.b64decode(app["data"]["DB_PASSWORD"]).decode() == "pa$$"
    assert app["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubestash"}
    assert "kubestash.io/checksum" in app["metadata"]["annotations"]


def test_stream_starts_with_document_marker(settings):
    text = render(settings, "secret")

    assert text.startswith("---\napiVersion: v1\n")
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


def test_shell_format_has_no_data(settings):
    text = render(settings, "shell")
    documents = list(yaml.safe_load_all(text))

    assert len(documents) == 2
    for document in documents:
        assert "data" not in document
        assert document["type"] == "Opaque"
    assert base64.b64encode(b"db.internal").decode() not in text


def test_shell_format_needs_no_kms(settings, aws, monkeypatch):
    calls = []
    session = aws.session()
    session.events.register("before-call.kms.Decrypt", lambda **kwargs: calls.append(1))

    render(settings, "shell", session=session)

    assert calls == []


def test_externalsecret_format(settings):
    documents = list(yaml.safe_load_all(render(settings, "externalsecret")))

    store = documents[0]
    assert store["kind"] == "ClusterSecretStore"
    webhook = store["spec"]["provider"]["webhook"]
    assert webhook["url"] == (
        'http://kubestash.kubestash.svc:8080/v1/secrets/{{ .remoteRef.key | replace "%2F" "/" }}'
    )
    assert webhook["headers"]["Authorization"] == "Bearer {{ .auth.token }}"
    assert webhook["secrets"][0]["secretRef"]["namespace"] == "kubestash"

    external = by_name(documents[1:])
    app = external[("test", "app")]
    assert app["kind"] == "ExternalSecret"
    assert app["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "kubestash"}
    assert app["spec"]["target"]["name"] == "app"
    assert app["spec"]["dataFrom"] == [{"extract": {"key": "test/app"}}]


def test_render_command_prints_yaml(settings, capsys, restore_root):
    code = main(
        [
            "render",
            "--format",
            "shell",
            "--ddb-table",
            settings.ddb_table,
            "--table-region",
            settings.table_region,
        ]
    )

    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert code == 0
    assert len(documents) == 2


def test_render_command_reports_missing_table(aws, capsys, restore_root):
    code = main(["render", "--ddb-table", "no-such-table", "--table-region", aws.region])

    assert code == 1
    assert "no-such-table" in capsys.readouterr().err
