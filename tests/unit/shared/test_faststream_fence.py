"""The fence around FastStream's consumer attributes (shared.runtime.faststream_fence), checked on
faststream 0.7.8 with aiokafka 0.14.0: fails loudly if an upgrade moves what impact seeks through."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from shared.runtime import faststream_fence
from shared.runtime.faststream_fence import rewind, seek


class _Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


@pytest.mark.parametrize("package", sorted(faststream_fence.CHECKED_AGAINST))
def test_the_installed_versions_are_the_ones_the_fence_was_checked_against(package: str) -> None:
    assert version(package) == faststream_fence.CHECKED_AGAINST[package], (
        f"{package} changed: re-check shared/runtime/faststream_fence.py, then update CHECKED_AGAINST"
    )


def test_a_subscriber_holds_its_consumer_as_consumer_none_until_started() -> None:
    subscriber = KafkaBroker().subscriber("t", group_id="g")
    assert "consumer" in type(subscriber).__slots__ or hasattr(subscriber, "consumer")
    assert subscriber.consumer is None
    with pytest.raises(RuntimeError, match="not started"):
        seek(subscriber, {("t", 0): 5})


def test_a_received_message_holds_the_consumer_that_fetched_it() -> None:
    assert "consumer" in inspect.signature(KafkaMessage.__init__).parameters


def test_aiokafka_seek_still_takes_a_partition_and_an_offset() -> None:
    assert list(inspect.signature(AIOKafkaConsumer.seek).parameters) == ["self", "partition", "offset"]


def test_rewind_seeks_each_partition_back_to_its_earliest_record() -> None:
    consumer = _Consumer()
    records = [SimpleNamespace(topic="t", partition=p, offset=o) for p, o in [(0, 7), (1, 3), (0, 5), (1, 4)]]
    rewind(SimpleNamespace(consumer=consumer), records)
    assert sorted(consumer.seeks) == [(TopicPartition("t", 0), 5), (TopicPartition("t", 1), 3)]
