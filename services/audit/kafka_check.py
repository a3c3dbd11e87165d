"""The ledger held against the topics themselves: no record on Kafka missing from it, none in it that Kafka
never had, and every recorded record byte-identical to Kafka's. Read-only: a group-less consumer per topic."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.audit.chain import canonical
from services.audit.merkle import leaf_hash
from services.audit.record import Record
from shared.contracts.catalogue import BY_NAME
from shared.runtime.kafka import OffsetProbe, records_to_end
from shared.runtime.settings import KafkaSettings

Position = tuple[str, int, int]


@dataclass
class OffsetsCheck:
    """Positions on Kafka not in the ledger, in the ledger but not on Kafka, and recorded differently."""

    missing: list[Position] = field(default_factory=list)
    extra: list[Position] = field(default_factory=list)
    altered: list[Position] = field(default_factory=list)
    compacted: int = 0  # recorded, since compacted away on Kafka: expected on a compacted topic
    expired: int = 0  # recorded, below the topic's beginning offset now: retention removed them
    in_flight: int = 0  # on Kafka, not recorded yet, and written within the grace period: the audit is catching up

    @property
    def intact(self) -> bool:
        return not (self.missing or self.extra or self.altered)


async def check_offsets(
    settings: KafkaSettings, topics: Iterable[str], recorded: Mapping[Position, bytes], grace_s: float = 30.0
) -> OffsetsCheck:
    """Compare `recorded` (position -> leaf hash of the recorded record) with every record now on the topics.

    A record Kafka received less than `grace_s` before the check began and the ledger lacks is counted as in
    flight (a running audit records it a moment later, heartbeats arrive all the time); an older one is missing.
    """
    result, seen = OffsetsCheck(), set()
    recent_ms = (time.time() - grace_s) * 1000
    probe = OffsetProbe(settings, "audit-verify")
    await probe.start()
    try:
        for name in topics:
            topic = BY_NAME[name]
            begins = await probe.beginning_offsets(topic)
            ends = await probe.end_offsets(topic)
            async for raw in records_to_end(settings, topic, "audit-verify", until=ends):
                position = (raw.topic, raw.partition, raw.offset)
                seen.add(position)
                leaf = recorded.get(position)
                record = Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value, tuple(raw.headers or ()))
                if leaf is None:
                    if raw.timestamp >= recent_ms:
                        result.in_flight += 1
                    else:
                        result.missing.append(position)
                elif leaf != leaf_hash(canonical(record)):
                    result.altered.append(position)
            _unseen(result, topic.name, topic.cleanup, begins, ends, recorded, seen)
    finally:
        await probe.stop()
    return result


def _unseen(
    result: OffsetsCheck,
    name: str,
    cleanup: str,
    begins: Mapping[int, int],
    ends: Mapping[int, int],
    recorded: Mapping[Position, bytes],
    seen: set[Position],
) -> None:
    for position in recorded:
        topic, partition, offset = position
        if topic != name or position in seen:
            continue
        if offset >= ends.get(partition, 0):
            result.extra.append(position)  # beyond anything Kafka ever held there
        elif offset < begins.get(partition, 0):
            result.expired += 1
        elif "compact" in cleanup:
            result.compacted += 1
        else:
            result.extra.append(position)  # within the topic's range, yet Kafka never held it
