"""A topic read from its beginning to where it ended when the read began (recovery, checks, tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from shared.contracts.catalogue import Topic

POLL_MS = 500


async def records_to_end(bootstrap: str, topic: Topic, **consumer_options: Any) -> AsyncIterator[ConsumerRecord]:
    """Every record of every partition of `topic`, oldest first per partition, up to the end offsets at the start.

    A group-less consumer of its own (`consumer_options` such as client_id go to it); nothing is committed.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                **consumer_options)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while await _behind(consumer, ends):
            for partition, records in (await consumer.getmany(timeout_ms=POLL_MS)).items():
                for record in records:
                    if record.offset < ends[partition]:  # a fetch may run past the end noted at the start
                        yield record
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    positions = [await consumer.position(tp) for tp in ends]
    return any(position < end for position, end in zip(positions, ends.values(), strict=True))
