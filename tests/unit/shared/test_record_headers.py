"""The fence around FastStream's header decoding (shared.runtime.record_headers), checked on faststream 0.7.8.

If an upgrade changes how FastStream parses records, these fail and say which assumption broke.
"""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka.message import KafkaMessage
from faststream.kafka.parser import AioKafkaBatchParser, AioKafkaParser

from shared.runtime.record_headers import tolerant_parser

BINARY = [("traceparent", b"00-abc"), ("blob", b"\xff\xfe\x00")]


def record(offset: int, headers: list) -> ConsumerRecord:
    return ConsumerRecord("compliance.directives.v1", 0, offset, 0, 0, b"k", b"{}", None, 1, 2, headers)


async def test_faststream_itself_still_refuses_a_binary_header() -> None:
    with pytest.raises(UnicodeDecodeError):  # the reason for the fence; remove it when this stops failing
        await AioKafkaParser(KafkaMessage, None).parse_message(record(1, BINARY))


async def test_a_binary_header_is_parsed_and_the_raw_record_kept_as_written() -> None:
    original = record(1, BINARY)
    parsed = await tolerant_parser(original, AioKafkaParser(KafkaMessage, None).parse_message)
    assert parsed.raw_message is original
    assert parsed.headers["traceparent"] == "00-abc" and parsed.headers["blob"].startswith("\ufffd")


async def test_plain_headers_go_through_faststream_unchanged() -> None:
    original = record(2, [("content-type", b"application/json")])
    parsed = await tolerant_parser(original, AioKafkaParser(KafkaMessage, None).parse_message)
    assert parsed.raw_message is original and parsed.content_type == "application/json"


async def test_a_batch_with_one_binary_header_is_parsed_whole() -> None:
    batch = (record(3, []), record(4, BINARY))
    parsed = await tolerant_parser(batch, AioKafkaBatchParser(KafkaMessage, None).parse_batch)
    assert parsed.raw_message is batch and parsed.body == [b"{}", b"{}"]
