"""Read identity.users.v1 back on the real broker, for the registry's tests."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.contracts.catalogue import USERS


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    """The next offset of every partition of identity.users.v1."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(USERS.name, p) for p in range(USERS.partitions)])
    finally:
        await consumer.stop()


async def read_since(bootstrap: str, since: dict[TopicPartition, int],
                     timeout: float = 60.0) -> list[ConsumerRecord]:
    """Every record produced to identity.users.v1 after the `since` offsets (up to the current end)."""
    until = await end_offsets(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(until))
        for tp in until:
            consumer.seek(tp, since.get(tp, 0))
        found = []
        async with asyncio.timeout(timeout):
            while not await _caught_up(consumer, until):
                batches = await consumer.getmany(timeout_ms=500)
                found += [r for batch in batches.values() for r in batch]
        return found
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, until: dict[TopicPartition, int]) -> bool:
    for tp, end in until.items():
        if await consumer.position(tp) < end:
            return False
    return True
