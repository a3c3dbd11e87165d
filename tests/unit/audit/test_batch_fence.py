"""The fence around the FastStream messages the audit reads and builds (services.audit.batch_fence), checked on
faststream 0.7.8: fails loudly if an upgrade changes a batch's raw records or how a middleware is made."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.audit import batch_fence
from services.audit.batch_fence import middleware_for, records_of
from shared.runtime.record_headers import raw_values


@pytest.mark.parametrize("package", sorted(batch_fence.CHECKED_AGAINST))
def test_the_installed_versions_are_the_ones_the_fence_was_checked_against(package: str) -> None:
    assert version(package) == batch_fence.CHECKED_AGAINST[package], (
        f"{package} changed: re-check services/audit/batch_fence.py, then update CHECKED_AGAINST"
    )


async def test_a_batch_message_holds_its_consumer_records_as_fetched() -> None:
    broker, seen = KafkaBroker(), []

    @broker.subscriber("audit-fence", batch=True, decoder=raw_values)
    async def handle(message: KafkaMessage) -> None:
        seen.append(records_of(message))

    async with TestKafkaBroker(broker) as tested:
        await tested.publish_batch(b"first", b"\xffsecond", topic="audit-fence")
    [records] = seen
    assert all(isinstance(r, ConsumerRecord) for r in records)
    assert [(r.topic, r.value) for r in records] == [("audit-fence", b"first"), ("audit-fence", b"\xffsecond")]


def test_a_middleware_is_made_over_one_message_with_the_broker_in_its_context() -> None:
    parameters = inspect.signature(BaseMiddleware.__init__).parameters
    assert parameters["msg"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert parameters["context"].kind is inspect.Parameter.KEYWORD_ONLY
    broker: Any = object()
    middleware = middleware_for(BaseMiddleware, "message", broker)
    assert middleware.msg == "message" and middleware.context.get("broker") is broker
