"""A producer that fails for good stops its service (shared.runtime.producer_watch), and the fence around the
aiokafka and FastStream attributes it reads, checked on aiokafka 0.14.0 with faststream 0.7.8."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber
from faststream.kafka import KafkaBroker

from shared.runtime import producer_watch
from shared.runtime.producer_watch import broker_producer, sender_task, watch


@pytest.mark.parametrize("package", sorted(producer_watch.CHECKED_AGAINST))
def test_the_installed_versions_are_the_ones_the_fence_was_checked_against(package: str) -> None:
    assert version(package) == producer_watch.CHECKED_AGAINST[package], (
        f"{package} changed: re-check shared/runtime/producer_watch.py, then update CHECKED_AGAINST"
    )


async def test_an_unstarted_producer_has_a_sender_without_a_task() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert sender_task(producer) is None
    assert watch(producer, "p", lambda name, error: None) is False


def test_an_unstarted_broker_has_no_producer_yet() -> None:
    assert broker_producer(KafkaBroker("127.0.0.1:1")) is None


def _producer_with(task: asyncio.Task) -> AIOKafkaProducer:
    return SimpleNamespace(_sender=SimpleNamespace(sender_task=task))  # type: ignore[return-value]


async def _watched(body) -> list[tuple[str, BaseException]]:
    calls: list[tuple[str, BaseException]] = []
    task = asyncio.create_task(body())
    assert watch(_producer_with(task), "intake broker", lambda name, error: calls.append((name, error)))
    await asyncio.wait({task})
    await asyncio.sleep(0)  # done-callbacks run on the next loop iteration
    return calls


async def test_a_sender_that_dies_of_an_error_is_reported_once_with_the_error() -> None:
    async def dies() -> None:
        raise OutOfOrderSequenceNumber("sequence 7 out of order")

    calls = await _watched(dies)
    assert [(name, type(error)) for name, error in calls] == [("intake broker", OutOfOrderSequenceNumber)]


async def test_a_sender_stopped_normally_is_not_reported() -> None:
    async def runs() -> None:
        await asyncio.sleep(3600)

    calls: list[tuple[str, BaseException]] = []
    task = asyncio.create_task(runs())
    watch(_producer_with(task), "p", lambda name, error: calls.append((name, error)))
    await asyncio.sleep(0)
    task.cancel()  # what AIOKafkaProducer.stop() does to its sender
    await asyncio.wait({task})
    await asyncio.sleep(0)
    assert calls == []


async def test_a_sender_that_returns_is_not_reported() -> None:
    async def returns() -> None:
        return None

    assert await _watched(returns) == []
