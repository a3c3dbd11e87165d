"""Every compression COUNTERMAND_KAFKA_COMPRESSION accepts can be used: aiokafka needs cramjam for lz4 and zstd and
refuses to create a producer without it."""

from __future__ import annotations

import typing

import pytest

from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings

CODECS = typing.get_args(KafkaSettings.model_fields["compression"].annotation)


@pytest.mark.parametrize("codec", CODECS)
async def test_a_producer_can_be_made_with_every_accepted_compression(codec: str) -> None:
    producer = kafka.producer(KafkaSettings(bootstrap="127.0.0.1:9", compression=codec), "t")
    assert producer._compression_type == (None if codec == "none" else codec)  # noqa: SLF001 (no public accessor)
