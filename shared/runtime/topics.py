"""Create or update the catalogue's topics on a broker, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2

from shared.contracts.catalogue import ALL_TOPICS, Topic
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings


def partition_for(topic: Topic, key: bytes) -> int:
    """The partition of the topic a record with this key is written to.

    Producers use the default partitioner (murmur2 of the key, as Kafka's Java client), so a consumer that
    needs only one key's records -- an agent, its cluster's commands -- can read that partition alone.
    This holds while the topic has the catalogue's partition count, which is why keyed topics keep it.
    """
    return (murmur2(key) & 0x7FFFFFFF) % topic.partitions


@dataclass
class TopicChange:
    """What `apply_topics` did to one topic."""

    name: str
    action: str  # created, updated, unchanged


async def apply_topics(
    settings: KafkaSettings,
    topics: tuple[Topic, ...] = ALL_TOPICS,
    replication: int = 1,
    min_insync_replicas: int | None = None,
    audit_horizon_days: int | None = None,
) -> list[TopicChange]:
    """Create missing topics, raise partition counts and align configs with the catalogue.

    min_insync_replicas, when given, is set on every topic (min.insync.replicas) so that acks=all
    producers fail rather than write to fewer replicas; audit_horizon_days replaces the catalogue's
    AUDIT_HORIZON_DAYS on the compacted registry.
    """
    if min_insync_replicas is not None and min_insync_replicas > replication:
        raise ValueError(
            f"min_insync_replicas ({min_insync_replicas}) exceeds replication ({replication}): "
            "every acks=all write would fail"
        )
    async with admin(settings, "topics") as client:
        existing = await _partition_counts(client)
        changes = []
        for topic in topics:
            wanted = wanted_configs(topic, min_insync_replicas, audit_horizon_days)
            if topic.name not in existing:
                response = await client.create_topics(
                    [NewTopic(topic.name, topic.partitions, replication, topic_configs=wanted)]
                )
                _raise_on_error(response, topic.name)
                changes.append(TopicChange(topic.name, "created"))
                continue
            updated = await _align(client, topic, existing[topic.name], wanted)
            changes.append(TopicChange(topic.name, "updated" if updated else "unchanged"))
        return changes


def wanted_configs(
    topic: Topic, min_insync_replicas: int | None = None, audit_horizon_days: int | None = None
) -> dict[str, str]:
    """The broker-side configs a topic should have: the catalogue's (with the audit horizon given), plus
    min.insync.replicas when given."""
    configs = topic.configs(audit_horizon_days)
    if min_insync_replicas is None:
        return configs
    if min_insync_replicas < 1:
        raise ValueError(f"min_insync_replicas must be at least 1, got {min_insync_replicas}")
    return {**configs, "min.insync.replicas": str(min_insync_replicas)}


async def missing_topics(settings: KafkaSettings, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[str]:
    """Names of the catalogue topics the broker does not have yet (empty once `apply_topics` ran)."""
    async with admin(settings, "topics") as client:
        existing = set(await client.list_topics())
    return [t.name for t in topics if t.name not in existing]


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    described = await admin.describe_topics(await admin.list_topics())
    return {t["topic"]: len(t["partitions"]) for t in described}


async def _align(admin: AIOKafkaAdminClient, topic: Topic, partitions: int, wanted: dict[str, str]) -> bool:
    updated = False
    if partitions < topic.partitions:
        await admin.create_partitions({topic.name: NewPartitions(topic.partitions)})
        updated = True
    resource = ConfigResource(ConfigResourceType.TOPIC, topic.name)
    current = await admin.describe_configs([resource])
    have = {entry[0]: entry[1] for entry in current[0].resources[0][4]}
    if any(have.get(k) != v for k, v in wanted.items()):
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic.name, wanted)])
        updated = True
    return updated


TOPIC_ALREADY_EXISTS = 36


def _raise_on_error(response: object, name: str) -> None:
    for entry in getattr(response, "topic_errors", []):
        code, message = entry[1], entry[2] if len(entry) > 2 else ""
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"creating topic {name} failed: error {code} {message or ''}".strip())
