"""On the real broker: --min-insync-replicas lands on the topics, and `topics wait` sees the catalogue."""

from __future__ import annotations

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.waiting import eventually
from shared.contracts.catalogue import DEAD_LETTER_TOPICS, dead_letter_topic
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics, missing_topics

TOPIC_OVERRIDE = 1  # DescribeConfigs source DYNAMIC_TOPIC_CONFIG: set on the topic itself


async def topic_configs(bootstrap: str, name: str) -> dict[str, tuple[str, int]]:
    """Each config of a topic: (value, where it comes from)."""
    async with admin(KafkaSettings(bootstrap=bootstrap), "tests-topics") as client:
        described = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    return {entry[0]: (entry[1], entry[3]) for entry in described[0].resources[0][4]}


async def test_min_insync_replicas_is_set_on_the_topic_only_when_asked(bootstrap: str, unique: str) -> None:
    plain, strict = dead_letter_topic(f"deploy-plain-{unique}"), dead_letter_topic(f"deploy-strict-{unique}")
    await apply_topics(KafkaSettings(bootstrap=bootstrap), (plain,))
    await apply_topics(KafkaSettings(bootstrap=bootstrap), (strict,), replication=1, min_insync_replicas=1)

    # a new topic reaches the broker's metadata shortly after its creation
    plain_configs = await eventually(lambda: topic_configs(bootstrap, plain.name), f"configs of {plain.name}")
    assert plain_configs["min.insync.replicas"][1] != TOPIC_OVERRIDE
    configs = await eventually(lambda: topic_configs(bootstrap, strict.name), f"configs of {strict.name}")
    assert configs["min.insync.replicas"] == ("1", TOPIC_OVERRIDE)
    assert configs["cleanup.policy"] == (strict.cleanup, TOPIC_OVERRIDE)


async def test_wait_finds_every_catalogue_topic_and_names_a_missing_one(bootstrap: str, unique: str) -> None:
    async def none_missing() -> bool:
        return await missing_topics(KafkaSettings(bootstrap=bootstrap)) == []

    await eventually(none_missing, "every catalogue topic")
    absent = dead_letter_topic(f"never-{unique}")
    assert await missing_topics(KafkaSettings(bootstrap=bootstrap), DEAD_LETTER_TOPICS + (absent,)) == [absent.name]
