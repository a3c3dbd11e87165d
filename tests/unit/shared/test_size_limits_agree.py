"""The sizes every Kafka client uses agree with the catalogue's max.message.bytes, so no record a topic took can
be unfetchable, and no producer sends what a topic would refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.contracts.catalogue import ALL_TOPICS, FETCH_BYTES, MAX_MESSAGE_BYTES
from shared.runtime.broker import consumer_options
from shared.runtime.kafka import producer_options
from shared.runtime.settings import KafkaSettings


def test_every_topic_declares_max_message_bytes_and_consumers_fetch_more_than_any() -> None:
    largest = max(int(t.configs()["max.message.bytes"]) for t in ALL_TOPICS)
    assert largest == MAX_MESSAGE_BYTES
    assert consumer_options("g")["max_partition_fetch_bytes"] >= largest
    assert FETCH_BYTES >= largest


def test_producers_send_no_more_than_every_topic_takes() -> None:
    assert producer_options(KafkaSettings())["max_request_size"] <= min(t.max_message_bytes for t in ALL_TOPICS)
    with pytest.raises(ValidationError, match="max_request_bytes"):
        KafkaSettings(max_request_bytes=MAX_MESSAGE_BYTES + 1)
