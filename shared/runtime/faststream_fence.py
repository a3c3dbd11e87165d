"""Where Countermand reaches past FastStream to its aiokafka consumer: checked against faststream==0.7.8
with aiokafka==0.14.0.

A KafkaSubscriber holds its running AIOKafkaConsumer as `.consumer` (None until started) and a
KafkaMessage the consumer that fetched it as `.consumer`; impact seeks with them (to a snapshot's offsets,
and back to a failed batch). tests/unit/shared/test_faststream_fence.py fails loudly if an upgrade moves
either attribute or changes aiokafka's seek().
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.structs import TopicPartition

CHECKED_AGAINST = {"faststream": "0.7.8", "aiokafka": "0.14.0"}


def seek(holder: Any, offsets: Mapping[tuple[str, int], int]) -> None:
    """Move the consumer of a started subscriber or of a received message to these (topic, partition) offsets."""
    consumer = holder.consumer
    if consumer is None:
        raise RuntimeError("the subscriber is not started: it has no consumer to seek")
    for (topic, partition), offset in offsets.items():
        consumer.seek(TopicPartition(topic, partition), offset)


def rewind(holder: Any, records: Iterable[Any]) -> None:
    """Seek back to the earliest of these records per partition, so the batch is fetched again."""
    earliest: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        earliest[key] = min(earliest.get(key, record.offset), record.offset)
    seek(holder, earliest)
