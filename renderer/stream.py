"""DynamoDB Streams readers: where stream records become Secret updates.

One task reads each shard. A shard starts only after its parent shard has been read to its
end, so the records of one credstash name arrive in order across shard splits. A closed
shard is read to its end and then handed over to its children, which a periodic
DescribeStream finds. Each record goes to `Syncer.apply_stream_record` on a worker thread,
and the Secret it names goes to the scheduler's debounce batch.

Recovery, by what the service returns:
- ExpiredIteratorException: an iterator is valid for 15 minutes, so a new one is taken
  after the last sequence number read;
- TrimmedDataAccessException, or a position that cannot be restored: records were lost
  (a stream keeps them for 24 hours), so a full sync is requested and reading goes on;
- throttling: retried with exponential backoff and jitter, after botocore's standard retry
  mode has already retried a few times;
- anything else ends the shard task, which is restarted with backoff and logged with the
  shard id. The restart policy resets after a quiet period, like CrashLoopBackOff, which
  is why it is written here rather than taken from tenacity.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from functools import partial
from typing import Any

from botocore.exceptions import ClientError
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential_jitter

from renderer import metrics
from renderer.shards import (
    EXPIRED,
    NOT_FOUND,
    TRIMMED,
    RecordFailed,
    Shard,
    StreamTiming,
    describe_error,
    describe_shards,
    discover_stream_arn,
    error_code,
    forget_lag,
    is_throttled,
    shard_from_description,
)

logger = logging.getLogger(__name__)

__all__ = ["StreamReaders", "StreamTiming", "describe_shards", "discover_stream_arn"]


class StreamReaders:
    """All shard readers of one stream, started at LATEST and supervised."""

    def __init__(
        self,
        client: Any,
        *,
        resolve_arn: Callable[[], str],
        apply_record: Callable[[dict[str, Any]], Any],
        on_refs: Callable[[list[Any]], None],
        on_lost_position: Callable[[str], None],
        pool: Executor,
        timing: StreamTiming | None = None,
    ):
        self._client = client
        self._resolve_arn = resolve_arn
        self._apply_record = apply_record
        self._on_refs = on_refs
        self._on_lost_position = on_lost_position
        self._pool = pool
        self._timing = timing or StreamTiming()
        self.stream_arn: str | None = None
        self.shards: dict[str, Shard] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._describer: asyncio.Task[None] | None = None
        self._describe_now = asyncio.Event()
        self._positioned = False

    async def start(self) -> bool:
        """Position a reader at LATEST on every open shard, then keep the shard list current.

        Returns whether the readers are positioned. When the stream cannot be described
        yet, positioning is retried in the background and a full sync follows it, because
        records written before then are not read.
        """
        try:
            await self._position()
        except Exception as error:
            logger.error(
                "could not position the stream readers: %s; retrying in the background",
                describe_error(error),
            )
        self._describer = asyncio.create_task(
            self._supervise("describe", self._describe_loop), name="stream-describe"
        )
        return self._positioned

    async def stop(self) -> None:
        if self._describer is not None:
            self._describer.cancel()
            await asyncio.gather(self._describer, return_exceptions=True)
            self._describer = None
        await self.stop_shards()
        self._positioned = False

    def status(self) -> dict[str, Any]:
        shards = [s.to_dict() for s in self.shards.values() if s.status != "before-start"]
        return {"stream_arn": self.stream_arn, "positioned": self._positioned, "shards": shards}

    async def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(method, **kwargs))

    async def _position(self) -> None:
        if self.stream_arn is None:
            self.stream_arn = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._resolve_arn
            )
        described = await self._call(
            describe_shards, client=self._client, stream_arn=self.stream_arn
        )
        for entry in described:
            shard = shard_from_description(entry, start="LATEST")
            if shard.closed:
                # Records of shards closed before start-up are covered by the start-up scan.
                shard.status = "before-start"
            else:
                shard.iterator = await self._get_iterator(shard, "LATEST")
            self.shards[shard.shard_id] = shard
        self._positioned = True
        logger.info(
            "stream %s: positioned at LATEST on %d open shard(s)",
            self.stream_arn,
            sum(1 for s in self.shards.values() if not s.closed),
        )
        self._launch_ready_shards()

    async def _describe_loop(self) -> None:
        while True:
            if not self._positioned:
                await self._position()
                self._on_lost_position("the stream readers were positioned after the start-up")
            else:
                await self._refresh()
            self._describe_now.clear()
            try:
                await asyncio.wait_for(
                    self._describe_now.wait(), timeout=self._timing.describe_interval
                )
            except TimeoutError:
                pass

    async def _refresh(self) -> None:
        try:
            described = await self._call(
                describe_shards, client=self._client, stream_arn=self.stream_arn
            )
        except ClientError as error:
            if error_code(error) != NOT_FOUND:
                raise
            logger.error("stream %s no longer exists; discovering it again", self.stream_arn)
            await self.stop_shards()
            self.stream_arn = None
            self._positioned = False
            return

        for entry in described:
            known = self.shards.get(entry["ShardId"])
            if known is None:
                shard = shard_from_description(entry, start="TRIM_HORIZON")
                self.shards[shard.shard_id] = shard
                logger.info("stream: new shard %s (parent %s)", shard.shard_id, shard.parent_id)
            elif "EndingSequenceNumber" in entry.get("SequenceNumberRange", {}):
                known.closed = True
        self._launch_ready_shards()

    async def stop_shards(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for shard_id in self.shards:
            forget_lag(shard_id)
        self.shards.clear()

    def _launch_ready_shards(self) -> None:
        for shard in self.shards.values():
            if shard.shard_id in self._tasks or shard.status in ("finished", "before-start"):
                continue
            parent = self.shards.get(shard.parent_id or "")
            if parent is not None and parent.status not in ("finished", "before-start"):
                continue
            self._tasks[shard.shard_id] = asyncio.create_task(
                self._supervise(f"shard {shard.shard_id}", partial(self._read_shard, shard)),
                name=f"stream-{shard.shard_id}",
            )

    async def _supervise(self, label: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        failures = 0
        failed_record: tuple[str | None, int] = (None, 0)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await run()
                return
            except Exception as error:
                if loop.time() - started > self._timing.restart_reset:
                    failures = 0
                failures += 1
                delay = min(
                    self._timing.restart_max, self._timing.restart_initial * 2 ** (failures - 1)
                )
                logger.error(
                    "stream reader for %s failed: %s; restarting in %.1f seconds",
                    label,
                    describe_error(error),
                    delay,
                    exc_info=not isinstance(error, ClientError),
                )
                failed_record = self._after_failure(label, error, failed_record)
                await asyncio.sleep(delay)

    def _after_failure(
        self, label: str, error: Exception, failed_record: tuple[str | None, int]
    ) -> tuple[str | None, int]:
        shard = self.shards.get(label.removeprefix("shard "))
        if shard is None:
            return failed_record
        shard.restarts += 1
        shard.status = "restarting"
        shard.last_error = type(error).__name__
        if shard.sequence_number is not None:
            # Resume after the last record that was applied, not at a stale iterator.
            shard.iterator = None
        if not isinstance(error, RecordFailed):
            return (None, 0)

        count = failed_record[1] + 1 if failed_record[0] == error.sequence_number else 1
        if count < self._timing.max_record_failures:
            return (error.sequence_number, count)
        logger.error(
            "skipping record %s of shard %s after %d failed attempts; a full sync re-reads "
            "the table",
            error.sequence_number,
            shard.shard_id,
            count,
        )
        shard.sequence_number = error.sequence_number
        shard.iterator = None
        self._on_lost_position(f"record {error.sequence_number} could not be applied")
        return (None, 0)

    async def _read_shard(self, shard: Shard) -> None:
        shard.status = "reading"
        logger.debug("stream: reading shard %s from %s", shard.shard_id, shard.start)
        while True:
            if shard.iterator is None:
                shard.iterator = await self._restore_iterator(shard)
                if shard.iterator is None:
                    return self._finish(shard, "its position was lost after it closed")

            response = await self._get_records(shard)
            if response is None:
                continue

            records = response.get("Records", [])
            for record in records:
                await self._apply(shard, record)
            self._update_lag(shard, records)

            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
                return self._finish(shard, "it closed and was read to its end")
            if not records:
                await asyncio.sleep(self._timing.poll_interval)

    async def _get_records(self, shard: Shard) -> dict[str, Any] | None:
        """Return one GetRecords page, or None after the iterator had to be replaced."""

        def log_throttle(state: Any) -> None:
            logger.warning(
                "stream: GetRecords on shard %s throttled (attempt %d); backing off",
                shard.shard_id,
                state.attempt_number,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_throttled),
            wait=wait_exponential_jitter(
                multiplier=self._timing.throttle_initial,
                max=self._timing.throttle_max,
                jitter=self._timing.throttle_initial,
            ),
            stop=stop_never,
            before_sleep=log_throttle,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._call(
                        self._client.get_records, ShardIterator=shard.iterator, Limit=1000
                    )
        except ClientError as error:
            code = error_code(error)
            if code == EXPIRED:
                logger.warning(
                    "stream: iterator of shard %s expired; re-acquiring after sequence number %s",
                    shard.shard_id,
                    shard.sequence_number,
                )
            elif code in (TRIMMED, NOT_FOUND):
                self._lose_position(shard, f"GetRecords returned {code}")
            else:
                raise
            shard.iterator = None
            return None
        return None

    async def _restore_iterator(self, shard: Shard) -> str | None:
        """Take a new iterator after the last record read, or from the shard's start."""
        if shard.sequence_number is not None:
            kind = "AFTER_SEQUENCE_NUMBER"
        elif shard.start == "LATEST" and not shard.recovering:
            # Nothing was read yet from a LATEST position, so records may have been missed.
            self._lose_position(shard, "its iterator was lost before any record was read")
            kind = "LATEST"
        else:
            kind = shard.start

        try:
            iterator = await self._get_iterator(shard, kind)
            shard.recovering = False
            return iterator
        except ClientError as error:
            if error_code(error) not in (TRIMMED, NOT_FOUND):
                raise
            self._lose_position(shard, f"GetShardIterator returned {error_code(error)}")
        if shard.closed:
            return None
        iterator = await self._get_iterator(shard, "LATEST")
        shard.recovering = False
        return iterator

    async def _get_iterator(self, shard: Shard, kind: str) -> str:
        request: dict[str, Any] = {
            "StreamArn": self.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": kind,
        }
        if kind == "AFTER_SEQUENCE_NUMBER":
            request["SequenceNumber"] = shard.sequence_number
        response = await self._call(self._client.get_shard_iterator, **request)
        return response["ShardIterator"]

    def _lose_position(self, shard: Shard, reason: str) -> None:
        logger.warning(
            "stream: shard %s lost its position (%s); requesting a full sync",
            shard.shard_id,
            reason,
        )
        shard.sequence_number = None
        shard.start = "LATEST"
        shard.recovering = True
        self._on_lost_position(f"shard {shard.shard_id}: {reason}")

    async def _apply(self, shard: Shard, record: dict[str, Any]) -> None:
        sequence_number = record["dynamodb"]["SequenceNumber"]
        loop = asyncio.get_running_loop()
        try:
            ref = await loop.run_in_executor(self._pool, self._apply_record, record)
        except Exception as error:
            raise RecordFailed(shard.shard_id, sequence_number, error) from error
        metrics.stream_records_total.labels(record.get("eventName", "unknown")).inc()
        shard.sequence_number = sequence_number
        shard.records += 1
        shard.last_error = None
        if ref is not None:
            self._on_refs([ref])

    def _update_lag(self, shard: Shard, records: list[dict[str, Any]]) -> None:
        if not records:
            # An empty page is the closest DynamoDB Streams comes to "caught up".
            shard.lag_seconds = 0.0
        else:
            created = records[-1]["dynamodb"].get("ApproximateCreationDateTime")
            if created is None:
                return
            stamp = created.timestamp() if hasattr(created, "timestamp") else float(created)
            shard.lag_seconds = round(max(0.0, time.time() - stamp), 3)
        metrics.stream_lag_seconds.labels(shard.shard_id).set(shard.lag_seconds)

    def _finish(self, shard: Shard, reason: str) -> None:
        shard.status = "finished"
        shard.iterator = None
        forget_lag(shard.shard_id)
        self._tasks.pop(shard.shard_id, None)
        logger.info("stream: shard %s finished: %s", shard.shard_id, reason)
        self._launch_ready_shards()
        self._describe_now.set()
