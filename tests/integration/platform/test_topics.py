"""Topics are created from the catalogue, idempotently, on the real broker."""

from __future__ import annotations

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.contracts.catalogue import ALL_TOPICS, DAY_MS, HORIZON_CONFIGS, USERS
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


async def test_the_registry_gets_the_audit_horizon_given(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    try:
        await apply_topics(settings, (USERS,), audit_horizon_days=30)
        assert await _configs(settings, USERS.name, HORIZON_CONFIGS) == dict.fromkeys(HORIZON_CONFIGS, str(30 * DAY_MS))
    finally:
        await apply_topics(settings, (USERS,))
    assert await _configs(settings, USERS.name, HORIZON_CONFIGS) == {k: USERS.configs()[k] for k in HORIZON_CONFIGS}


async def _configs(settings: KafkaSettings, topic: str, names: tuple[str, ...]) -> dict[str, str]:
    async with admin(settings, "tests-topics") as client:
        described = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    have = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
    return {name: have[name] for name in names}
