"""Catch-up tracking: the agent is ready once its group has committed up to the end offsets seen at start."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

ATTEMPTS = 30


async def offsets_at_start(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition of the topic: (beginning offsets, end offsets) right now; retried while leaders settle."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _offsets(bootstrap, topic)
        except (KafkaError, LookupError) as exc:
            if attempt == ATTEMPTS:
                raise RuntimeError(f"cannot read the offsets of topic {topic}: {exc!r}") from exc
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def _offsets(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="countermand-agent-catchup")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for d in described if d["topic"] == topic for p in d["partitions"])
    if not numbers:
        raise LookupError(f"topic {topic} has no partitions")
    partitions = [TopicPartition(topic, p) for p in numbers]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                client_id="countermand-agent-catchup")
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: o for tp, o in begin.items()}, {tp.partition: o for tp, o in end.items()}


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed next offsets for the topic's partitions (absent where none)."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def behind(begin: dict[int, int], end: dict[int, int], committed: dict[int, int]) -> dict[int, int]:
    """Partitions whose consumption has not reached the target end offset yet, with that target."""
    return {p: target for p, target in end.items() if max(committed.get(p, 0), begin.get(p, 0)) < target}
