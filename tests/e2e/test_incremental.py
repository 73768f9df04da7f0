"""Incremental syncs from DynamoDB Streams records read from moto_server."""

from __future__ import annotations

import base64

import pytest

from renderer.names import SecretRef


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


class StreamTail:
    """Reads new records of the table's stream, as the service's stream readers would."""

    def __init__(self, aws, stream_arn: str) -> None:
        self.client = aws.client("dynamodbstreams")
        description = self.client.describe_stream(StreamArn=stream_arn)["StreamDescription"]
        shard = description["Shards"][0]["ShardId"]
        self.iterator = self.client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]

    def read(self) -> list[dict]:
        page = self.client.get_records(ShardIterator=self.iterator)
        self.iterator = page["NextShardIterator"]
        return page["Records"]


@pytest.fixture
def tail(aws, credstash_table):
    return StreamTail(aws, credstash_table.stream_arn)


def test_insert_record_syncs_its_secret(credstash_table, syncer, kubectl, tail):
    credstash_table.put_many({"test/app/A": "a", "test/other/B": "b"})
    syncer.full_sync(trigger="test")
    tail.read()

    credstash_table.put("test/app/NEW", "new")
    refs = {syncer.apply_stream_record(record) for record in tail.read()}
    result = syncer.sync_secrets(refs, trigger="stream")

    assert refs == {SecretRef("test", "app")}
    assert result.kind == "incremental"
    assert result.result == "success"
    assert decoded(kubectl.secret("test", "app")) == {"A": "a", "NEW": "new"}
    assert [s.name for s in result.secrets] == ["app"]


def test_remove_record_of_newest_version_restores_previous(credstash_table, syncer, kubectl, tail):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b"})
    credstash_table.put("test/app/A", "a2")
    syncer.full_sync(trigger="test")
    tail.read()

    credstash_table.delete("test/app/A", version=2)
    refs = {syncer.apply_stream_record(record) for record in tail.read()}
    syncer.sync_secrets(refs, trigger="stream")

    assert decoded(kubectl.secret("test", "app")) == {"A": "a", "B": "b"}


def test_remove_record_of_last_version_removes_key(credstash_table, syncer, kubectl, tail):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b", "test/app/C": "c"})
    syncer.full_sync(trigger="test")
    tail.read()

    credstash_table.delete("test/app/C")
    refs = {syncer.apply_stream_record(record) for record in tail.read()}
    syncer.sync_secrets(refs, trigger="stream")

    assert decoded(kubectl.secret("test", "app")) == {"A": "a", "B": "b"}
    assert "C" not in syncer.desired[SecretRef("test", "app")].keys


def test_record_for_ignored_name_names_no_secret(credstash_table, syncer, tail):
    credstash_table.put("plainname", "x")
    credstash_table.put("kube-system/x/KEY", "x")

    refs = [syncer.apply_stream_record(record) for record in tail.read()]

    assert refs == [None, None]


def test_record_during_full_sync_state_is_kept(credstash_table, syncer, kubectl, tail):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b"})
    syncer.full_sync(trigger="test")
    tail.read()

    credstash_table.put("test/app/A", "streamed")
    for record in tail.read():
        syncer.apply_stream_record(record)
    syncer.full_sync(trigger="test")

    assert decoded(kubectl.secret("test", "app")) == {"A": "streamed", "B": "b"}


def test_incremental_sync_keeps_manual_keys(credstash_table, syncer, kubectl, tail):
    credstash_table.put_many({"test/app/A": "a", "test/app/B": "b"})
    syncer.full_sync(trigger="test")
    kubectl.run(
        "patch",
        "secret",
        "app",
        "-n",
        "test",
        "--type",
        "merge",
        "-p",
        '{"stringData": {"MANUAL": "m"}}',
    )
    tail.read()

    credstash_table.put("test/app/B", "b2")
    refs = {syncer.apply_stream_record(record) for record in tail.read()}
    syncer.sync_secrets(refs, trigger="stream")

    assert decoded(kubectl.secret("test", "app")) == {"A": "a", "B": "b2", "MANUAL": "m"}


def test_incremental_sync_into_missing_namespace_is_skipped(credstash_table, syncer, tail):
    syncer.full_sync(trigger="test")
    tail.read()

    credstash_table.put("nowhere/app/KEY", "k")
    refs = {syncer.apply_stream_record(record) for record in tail.read()}
    result = syncer.sync_secrets(refs, trigger="stream")

    assert result.secrets[0].status == "skipped"
    assert "nowhere not found" in result.secrets[0].error
