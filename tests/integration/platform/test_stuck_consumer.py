"""A consumer group whose committed offset does not move while records wait is reported stuck, on the real broker."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition

from shared.contracts.catalogue import Topic
from shared.runtime.health import ConsumerWatch, LagWatch, readiness
from shared.runtime.kafka import OffsetProbe, admin, consuming, producing
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

pytestmark = pytest.mark.kafka


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def sampled_31_s_apart(
    settings: KafkaSettings, group: str, topic: Topic, client: str
) -> tuple[ConsumerWatch, dict[int, int]]:
    """The group's lag sampled twice, 31 s apart on a fake clock (a stall is 30 s): the watch, and the topic's end
    offsets as the probe read them first."""
    clock, watch = Clock(), ConsumerWatch("test")
    lag = LagWatch(settings, group, (topic,), watch, stall_after_s=30, clock=clock)
    probe = OffsetProbe(settings, client)
    await probe.start()
    try:
        ends = await probe.end_offsets(topic)
        async with admin(settings, client) as kafka_admin:
            await lag.sample(kafka_admin, probe)
            clock.now = 31
            await lag.sample(kafka_admin, probe)
    finally:
        await probe.stop()
    return watch, ends


async def test_a_group_stalled_behind_waiting_records_is_named_in_readiness(bootstrap: str, unique: str) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    topic = Topic(f"stuck-{unique}", dict, "key", 1, 3_600_000)
    await apply_topics(settings, (topic,))
    group = f"stuck-{unique}"
    async with producing(settings, "stuck") as producer:
        for i in range(5):
            await producer.send_and_wait(topic.name, b"x", key=str(i).encode())
    async with consuming(settings, "stuck", topic.name, group_id=group) as reader:
        await reader.getmany(timeout_ms=5000, max_records=2)
        await reader.commit()  # the group got two records in, then stopped moving
    watch, _ = await sampled_31_s_apart(settings, group, topic, "stuck")
    status, body = readiness(True, watch)
    assert status == 503
    [stuck] = body["stuck"]
    assert (stuck["topic"], stuck["partition"]) == (topic.name, 0) and stuck["offset"] >= 1
    assert "records waiting" in stuck["why"]


async def test_a_group_that_read_every_record_of_a_transaction_is_not_stuck_behind_its_commit_marker(
    bootstrap: str, unique: str
) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    topic = Topic(f"markers-{unique}", dict, "key", 1, 3_600_000)
    await apply_topics(settings, (topic,))
    group = f"markers-{unique}"
    async with producing(settings, "markers", transactional_id=f"markers-{unique}") as producer:
        async with producer.transaction():
            for i in range(2):
                await producer.send_and_wait(topic.name, b"x", key=str(i).encode())
    tp = TopicPartition(topic.name, 0)
    async with consuming(settings, "markers", topic.name, group_id=group) as reader:
        records = (await reader.getmany(timeout_ms=5000)).get(tp, [])
        await reader.commit({tp: records[-1].offset + 1})  # as a consumer committing after its last record does
    watch, ends = await sampled_31_s_apart(settings, group, topic, "markers")
    assert ends[0] == records[-1].offset + 2  # the commit marker lies between
    assert [r.offset for r in records] == [0, 1]
    assert readiness(True, watch) == (200, {"ready": True, "stuck": [], "unwritten_dead_letters": 0})
