"""Topics are created from the catalogue, idempotently, on the real broker."""

from __future__ import annotations

from shared.contracts.catalogue import ALL_TOPICS
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics


async def test_apply_creates_every_catalogue_topic_with_its_partitions(bootstrap: str) -> None:
    async with admin(KafkaSettings(bootstrap=bootstrap), "tests-topics") as client:
        described = {t["topic"]: len(t["partitions"]) for t in await client.describe_topics()}
    for topic in ALL_TOPICS:
        assert described.get(topic.name) == topic.partitions, topic.name


async def test_apply_twice_changes_nothing(bootstrap: str) -> None:
    changes = await apply_topics(KafkaSettings(bootstrap=bootstrap))
    assert {c.action for c in changes} == {"unchanged"}
