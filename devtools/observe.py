"""Read contract messages back from Kafka: what the demo and end-to-end tests watch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from shared.contracts.catalogue import Topic
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings


class TopicReader:
    """Reads a topic without a consumer group, parsing values with the contract: from the beginning, or from the
    offsets in `start` (partitions of the topic not named there are read from the beginning)."""

    def __init__(
        self, settings: KafkaSettings | str, topic: Topic, start: dict[TopicPartition, int] | None = None
    ) -> None:
        self.topic = topic
        self.messages: list[Any] = []
        self._start = {tp: offset for tp, offset in (start or {}).items() if tp.topic == topic.name}
        settings = KafkaSettings(bootstrap=settings) if isinstance(settings, str) else settings
        self._consumer = kafka.consumer(settings, f"observe-{topic.name}")

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic.name) or set()
        if not partitions:
            await self._consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata fetch
            partitions = self._consumer.partitions_for_topic(self.topic.name) or set()
        self._consumer.assign([TopicPartition(self.topic.name, p) for p in sorted(partitions)])
        for tp, offset in self._start.items():
            self._consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        """Fetch what is new; values that are null or not valid contract messages are skipped."""
        fresh = []
        batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                if record.value is None:
                    continue
                try:
                    fresh.append(self.topic.adapter.validate_json(record.value))
                except ValueError:
                    continue
        self.messages.extend(fresh)
        return fresh

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float, what: str = "message") -> Any:
        """The first message (already read or new) matching predicate, or TimeoutError naming it."""
        deadline = time.monotonic() + timeout
        for message in self.messages:
            if predicate(message):
                return message
        while time.monotonic() < deadline:
            for message in await self.poll():
                if predicate(message):
                    return message
        raise TimeoutError(f"no {what} on {self.topic.name} within {timeout:.0f}s")

    async def drain(self, until: Callable[[list[Any]], bool], timeout: float, what: str) -> list[Any]:
        """Read until `until(all messages)` holds, or TimeoutError naming what was awaited."""
        deadline = time.monotonic() + timeout
        while not until(self.messages):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not seen on {self.topic.name} within {timeout:.0f}s")
            await self.poll()
            await asyncio.sleep(0)
        return self.messages


async def topics_end(settings: KafkaSettings | str, *topics: Topic) -> dict[TopicPartition, int]:
    """Every partition's end offset of these topics now: where a test's own records will begin."""
    settings = KafkaSettings(bootstrap=settings) if isinstance(settings, str) else settings
    ends: dict[TopicPartition, int] = {}
    for topic in topics:
        for partition, offset in (await kafka.end_offsets(settings, topic, "observe-ends")).items():
            ends[TopicPartition(topic.name, partition)] = offset
    return ends


async def group_starts_at(settings: KafkaSettings | str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit these offsets for a group not started yet: it skips what earlier tests left on the topics (a fresh
    group would otherwise replay every record of the session)."""
    settings = KafkaSettings(bootstrap=settings) if isinstance(settings, str) else settings
    async with kafka.consuming(settings, "observe-group-start", group_id=group) as consumer:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
