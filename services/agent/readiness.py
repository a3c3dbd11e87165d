"""Readiness: caught up with the commands' end offsets seen at start, and synced with the control plane."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.contracts.catalogue import Topic
from shared.runtime.kafka import OffsetProbe, admin
from shared.runtime.settings import KafkaSettings

ATTEMPTS = 30
ASKED = 256  # not-ready heartbeats remembered: a marker answering any of them syncs a replica


@dataclass
class Readiness:
    """When an agent may answer checks (pure).

    Caught up alone is not enough for an agent new to the control plane: restrictions for a new cluster
    are sent in answer to its first heartbeat, after the end offsets it noted at start. It also needs a
    ClusterSynced for its cluster, consumed since it started or recorded in its snapshot by an earlier run
    (so a restart needs no control plane to become ready). A replica (one of several agents of the cluster, all
    reading its partition) takes only a marker answering one of its own not-ready heartbeats: another replica's
    marker was sent after what that replica lacked, not necessarily what this one lacks.
    """

    cluster_id: str
    synced: bool = False
    caught_up: bool = False
    replica_id: str = ""
    asked: deque[str] = field(default_factory=lambda: deque(maxlen=ASKED))

    @property
    def ready(self) -> bool:
        return self.caught_up and self.synced

    def ask(self, heartbeat_event_id: str) -> None:
        """A not-ready heartbeat is about to go out: its marker will answer it."""
        self.asked.append(heartbeat_event_id)

    def syncs(self, cluster_id: str, heartbeat_event_id: str | None = None) -> bool:
        """Whether a ClusterSynced for `cluster_id` (answering that heartbeat) newly syncs this agent (record it,
        then set `synced`)."""
        if cluster_id != self.cluster_id or self.synced:
            return False
        return not self.replica_id or heartbeat_event_id in self.asked


async def offsets_at_start(settings: KafkaSettings, topic: Topic) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition on the broker: (beginning offsets, end offsets) right now; retried while leaders settle."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _offsets(settings, topic)
        except (KafkaError, LookupError) as exc:
            if attempt == ATTEMPTS:
                raise RuntimeError(f"cannot read the offsets of topic {topic.name}: {exc!r}") from exc
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def _offsets(settings: KafkaSettings, topic: Topic) -> tuple[dict[int, int], dict[int, int]]:
    async with admin(settings, "agent-catchup") as client:
        described = await client.describe_topics([topic.name])
    numbers = sorted(p["partition"] for d in described if d["topic"] == topic.name for p in d["partitions"])
    if not numbers:
        raise LookupError(f"topic {topic.name} has no partitions")
    probe = OffsetProbe(settings, "agent-catchup")
    await probe.start()
    try:
        return await probe.beginning_offsets(topic, numbers), await probe.end_offsets(topic, numbers)
    finally:
        await probe.stop()


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed next offsets for the topic's partitions (absent where none)."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def behind(begin: dict[int, int], end: dict[int, int], committed: dict[int, int]) -> dict[int, int]:
    """Partitions whose consumption has not reached the target end offset yet, with that target."""
    return {p: target for p, target in end.items() if max(committed.get(p, 0), begin.get(p, 0)) < target}
