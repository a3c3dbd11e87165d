"""The console's Kafka side: a group-less reader of the directive, enforcement and acks topics folding every record
into the Board, a fan-out of what changed to the browsers' event streams, and a check that the broker answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from services.console.board import Board
from shared.contracts.catalogue import ACKS, AUDIT, BY_NAME, DIRECTIVES, ENFORCEMENT, Topic
from shared.runtime.kafka import OffsetProbe, consumer
from shared.runtime.settings import KafkaSettings

SERVICE = "console"
TOPICS: tuple[Topic, ...] = (DIRECTIVES, ENFORCEMENT, ACKS, AUDIT)
log = structlog.get_logger(service=SERVICE)


@dataclass
class Hub:
    """Fans events out to every open event stream; a browser too slow to keep up is dropped (it reconnects)."""

    streams: set[asyncio.Queue] = field(default_factory=set)
    depth: int = 1000

    def open(self) -> asyncio.Queue:
        stream: asyncio.Queue = asyncio.Queue(self.depth)
        self.streams.add(stream)
        return stream

    def close(self, stream: asyncio.Queue) -> None:
        self.streams.discard(stream)

    def send(self, event: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data, default=str)
        for stream in list(self.streams):
            try:
                stream.put_nowait((event, payload))
            except asyncio.QueueFull:
                self.streams.discard(stream)  # its response ends once it sees it was dropped


@dataclass
class BrokerState:
    """Whether the broker answered the last check, and since when it has not."""

    ok: bool = True
    down_since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "down_since": self.down_since.isoformat() if self.down_since else None}


@dataclass
class Feed:
    """Reads TOPICS from their beginning (every instance sees everything: no consumer group, nothing committed)."""

    settings: KafkaSettings
    board: Board
    hub: Hub
    render: Callable[[str], dict[str, Any] | None]  # a changed key -> the event data the browsers get
    check_interval_s: float = 2.0
    broker: BrokerState = field(default_factory=BrokerState)
    caught_up: bool = False
    skipped: int = 0  # records that are not valid messages of their topic (the owning consumer dead-letters them)
    _consumer: AIOKafkaConsumer | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        self._consumer = consumer(self.settings, f"{SERVICE}-feed")
        await self._consumer.start()
        wanted = [TopicPartition(t.name, p) for t in TOPICS for p in range(t.partitions)]
        self._consumer.assign(wanted)
        await self._consumer.seek_to_beginning(*wanted)
        ends = await self._consumer.end_offsets(wanted)
        self._tasks = [asyncio.create_task(self._read(ends)), asyncio.create_task(self._check())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp: end for tp, end in ends.items() if end > 0}
        self.caught_up = not pending
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            except Exception:  # the client reconnects by itself; a fetch error must not end the board's updates
                log.exception("fetch failed; retrying")
                await asyncio.sleep(1)
                continue
            for partition, records in batches.items():
                for record in records:
                    self.fold(BY_NAME[partition.topic], record.value)
            # By position, not by the last record: a transaction's commit marker takes the last offset of a partition.
            for partition in list(pending):
                if await self._consumer.position(partition) >= pending[partition]:
                    del pending[partition]
            if not self.caught_up and not pending:
                self.caught_up = True
                log.info("console caught up", directives=len(self.board.listing()), clusters=len(self.board.clusters))

    def fold(self, topic: Topic, value: bytes | None) -> None:
        """Fold one record's value into the board and tell the browsers what changed."""
        try:
            message = topic.adapter.validate_json(value or b"")
        except ValidationError as exc:
            self.skipped += 1
            log.warning("record skipped: not a valid message", topic=topic.name, error=str(exc)[:300])
            return
        for key in self.board.apply(message):
            data = self.render(key)
            if data is not None:
                self.hub.send(key.partition(":")[0], data)

    async def _check(self) -> None:
        probe = OffsetProbe(self.settings, f"{SERVICE}-probe")
        await probe.start()
        try:
            while True:
                await self._check_once(probe)
                await asyncio.sleep(self.check_interval_s)
        finally:
            await probe.stop()

    async def _check_once(self, probe: OffsetProbe) -> None:
        try:
            await asyncio.wait_for(probe.end_offsets(ACKS, [0]), timeout=max(3.0, 3 * self.check_interval_s))
            ok = True
        except Exception:  # any failure to answer in time is the broker being away, as far as the page goes
            ok = False
        if ok != self.broker.ok:
            self.broker = BrokerState(ok, None if ok else datetime.now(UTC))
            log.warning("broker unreachable") if not ok else log.info("broker reachable again")
            self.hub.send("broker", self.broker.as_json())
