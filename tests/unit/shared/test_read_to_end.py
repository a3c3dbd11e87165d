"""A read of a topic to its end asks the broker not to hold fetches open: the consumer's stop waits for the fetch in
flight, and at the default wait (500 ms) that was most of an impact restart's recovery of its directives. A caller in
a hurry may leave the consumer's stop (its TLS goodbyes) to the background."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.contracts.catalogue import IMPACT
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings


class _Reader:
    def __init__(self, stopping: asyncio.Event | None = None) -> None:
        self.stopping = stopping  # stop() waits for it, as a TLS close waits for the broker
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self.stopping is not None:
            await self.stopping.wait()
        self.stopped = True

    def assign(self, partitions: list) -> None:
        self.partitions = partitions

    async def seek_to_beginning(self, *partitions: object) -> None:
        return None

    async def end_offsets(self, partitions: list) -> dict:
        return dict.fromkeys(partitions, 0)  # an empty topic: nothing to read

    async def position(self, partition: object) -> int:
        return 0


async def test_a_read_to_the_end_asks_for_short_fetch_waits_unless_told_otherwise(monkeypatch) -> None:
    seen: list[dict[str, Any]] = []

    def consumer(settings: KafkaSettings, purpose: str, *topics: str, **options: Any) -> _Reader:
        seen.append(options)
        return _Reader()

    monkeypatch.setattr(kafka, "consumer", consumer)
    settings = KafkaSettings(bootstrap="127.0.0.1:9")
    assert [r async for r in kafka.records_to_end(settings, IMPACT, "t")] == []
    assert [r async for r in kafka.records_to_end(settings, IMPACT, "t", fetch_max_wait_ms=200)] == []
    assert [o["fetch_max_wait_ms"] for o in seen] == [kafka.READ_TO_END_WAIT_MS, 200]
    assert kafka.READ_TO_END_WAIT_MS <= 50


async def test_a_read_that_stops_behind_returns_before_its_consumer_has_stopped(monkeypatch) -> None:
    slow = _Reader(stopping=asyncio.Event())
    monkeypatch.setattr(kafka, "consumer", lambda *args, **options: slow)
    settings = KafkaSettings(bootstrap="127.0.0.1:9")
    assert [r async for r in kafka.records_to_end(settings, IMPACT, "t", stop_behind=True)] == []
    assert not slow.stopped  # the read is over; the stop goes on in the background
    slow.stopping.set()
    await asyncio.sleep(0.01)
    assert slow.stopped
