"""Stream records reach Secrets on their own: no cron, no /render."""

from __future__ import annotations

import logging

import pytest

from renderer.stream import describe_shards

from .conftest import Stack
from .harness import RunningService, wait_until
from .streamfaults import FaultyStreams, client_error

WRITE_VERBS = ("create", "update", "patch", "delete")


def secret_writes(stack: Stack) -> list[str]:
    """Return "namespace/name" for each write request to a Secret, in order."""
    return [
        f"{record.namespace}/{record.name}"
        for record in stack.kubeapi.requests
        if record.resource == "secrets" and record.verb in WRITE_VERBS
    ]


def started(stack: Stack, **options: object) -> RunningService:
    running = stack.service(**options)
    wait_until(lambda: running.http.get("/readyz").status_code == 200)
    return running


def test_put_then_delete_reach_secret_through_stream(stack: Stack) -> None:
    stack.create_namespace("team")
    for key in ("TOKEN", "USER", "HOST"):
        stack.table.put(f"team/other/{key}", "unchanged")
    stack.table.put("team/app/EXISTING", "e1")
    stack.sync_once()
    running = started(stack)
    writes_before = len(secret_writes(stack))

    stack.table.put("team/app/PASSWORD", "p1")
    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("PASSWORD") == "p1")
    stack.table.delete("team/app/PASSWORD")
    wait_until(lambda: stack.secret_data("team", "app") == {"EXISTING": "e1"})
    wait_until(lambda: len(running.history) == 3)

    assert set(secret_writes(stack)[writes_before:]) == {"team/app"}
    assert [entry["trigger"] for entry in running.history] == ["startup", "stream", "stream"]
    assert [entry["kind"] for entry in running.history][1:] == ["incremental", "incremental"]
    metrics = running.http.get("/metrics").text
    assert 'kubestash_stream_records_total{event="INSERT"}' in metrics
    assert 'kubestash_stream_records_total{event="REMOVE"}' in metrics
    shard = only_shard(running)
    assert f'kubestash_stream_lag_seconds{{shard="{shard}"}}' in metrics


@pytest.fixture
def faulty(stack: Stack) -> FaultyStreams:
    client = stack.table.server.client("dynamodbstreams")
    return FaultyStreams(client, stack.table.stream_arn)


def test_burst_of_puts_is_one_apply(stack: Stack, faulty: FaultyStreams) -> None:
    stack.create_namespace("team")
    running = started(stack, streams=faulty, variables={"WAIT_TIME": "2"})
    writes_before = len(secret_writes(stack))

    # Holding the reader makes the 50 records arrive within one debounce window however
    # slowly this machine writes them.
    faulty.held.set()
    for index in range(50):
        stack.table.put(f"team/burst/KEY_{index % 5}", f"value-{index}")
    faulty.held.clear()

    expected = {f"KEY_{index}": f"value-{45 + index}" for index in range(5)}
    wait_until(lambda: stack.secret_data("team", "burst") == expected, timeout=20)
    wait_until(lambda: len(running.history) == 2)
    assert secret_writes(stack)[writes_before:] == ["team/burst"]
    assert running.history[1]["kind"] == "incremental"


def only_shard(running: RunningService) -> str:
    return running.run(lambda: next(iter(running.service.readers.shards)))


def put_and_wait(stack: Stack, name: str, value: str) -> None:
    namespace, secret, key = name.split("/")
    stack.table.put(name, value)
    wait_until(lambda: (stack.secret_data(namespace, secret) or {}).get(key) == value)


def test_shard_split_is_followed_to_children(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="renderer.stream")
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    parent = only_shard(running)
    put_and_wait(stack, "team/app/BEFORE", "1")

    children = faulty.split(parent)
    put_and_wait(stack, "team/app/AFTER", "2")

    assert stack.secret_data("team", "app") == {"BEFORE": "1", "AFTER": "2"}
    assert f"shard {parent} finished" in caplog.text
    for child in children:
        assert f"new shard {child} (parent {parent})" in caplog.text
    reads = [call["ShardId"] for call in faulty.operations("get_shard_iterator")]
    assert reads.index(children[0]) > reads.index(parent)


def test_closed_shard_waits_for_describe_of_child(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="renderer.stream")
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    parent = only_shard(running)

    [child] = faulty.split(parent, children=1, hidden=True)
    stack.table.put("team/app/LATE", "3")
    wait_until(lambda: f"shard {parent} finished" in caplog.text)
    assert stack.secret_data("team", "app") is None

    faulty.reveal()
    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("LATE") == "3")
    assert f"new shard {child}" in caplog.text


def test_closed_shard_at_start_is_skipped(stack: Stack, faulty: FaultyStreams) -> None:
    stack.create_namespace("team")
    stack.table.put("team/app/OLD", "1")
    shard = describe_shards(faulty.client, stack.table.stream_arn)[0]["ShardId"]
    [child] = faulty.split(shard, children=1)

    running = started(stack, streams=faulty)
    put_and_wait(stack, "team/app/NEW", "2")

    shards = {s["shard_id"]: s for s in running.http.get("/status").json()["stream"]["shards"]}
    assert shard not in shards
    assert shards[child]["status"] == "reading"
    assert stack.secret_data("team", "app") == {"OLD": "1", "NEW": "2"}


def test_expired_iterator_resumes_after_last_record(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    shard = only_shard(running)
    put_and_wait(stack, "team/app/FIRST", "1")
    last = running.run(lambda: running.service.readers.shards[shard].sequence_number)

    faulty.fail_next("get_records", client_error("ExpiredIteratorException", "GetRecords"))
    put_and_wait(stack, "team/app/SECOND", "2")

    requests = faulty.operations("get_shard_iterator")
    assert requests[-1]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert requests[-1]["SequenceNumber"] == last
    assert f"iterator of shard {shard} expired" in caplog.text
    assert [entry["kind"] for entry in running.history].count("full") == 1


def test_trimmed_data_triggers_full_sync(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    shard = only_shard(running)

    faulty.held.set()
    stack.table.put("team/app/LOST", "gone-from-stream")
    faulty.fail_next("get_records", client_error("TrimmedDataAccessException", "GetRecords"))
    faulty.held.clear()

    wait_until(lambda: (stack.secret_data("team", "app") or {}).get("LOST") == "gone-from-stream")
    assert f"shard {shard} lost its position" in caplog.text
    assert ("full", "stream") in [(e["kind"], e["trigger"]) for e in running.history]
    put_and_wait(stack, "team/app/AFTER", "still-read")


def test_reader_crash_is_restarted_and_logged(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    shard = only_shard(running)
    put_and_wait(stack, "team/app/FIRST", "1")

    faulty.fail_next("get_records", ConnectionResetError("connection reset by peer"))
    put_and_wait(stack, "team/app/SECOND", "2")

    status = running.http.get("/status").json()["stream"]["shards"][0]
    assert status["restarts"] == 1
    assert f"stream reader for shard {shard} failed: ConnectionResetError" in caplog.text
    assert stack.secret_data("team", "app") == {"FIRST": "1", "SECOND": "2"}


def test_throttled_reads_back_off(
    stack: Stack, faulty: FaultyStreams, caplog: pytest.LogCaptureFixture
) -> None:
    stack.create_namespace("team")
    running = started(stack, streams=faulty)
    shard = only_shard(running)

    throttled = client_error("ProvisionedThroughputExceededException", "GetRecords")
    for _ in range(3):
        faulty.fail_next("get_records", throttled)
    put_and_wait(stack, "team/app/KEY", "1")

    assert f"GetRecords on shard {shard} throttled (attempt 3)" in caplog.text
    assert running.http.get("/status").json()["stream"]["shards"][0]["restarts"] == 0
