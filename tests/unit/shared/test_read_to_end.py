"""A read of a topic to its end asks the broker not to hold fetches open: the consumer's stop waits for the fetch in
flight, and at the default wait (500 ms) that was most of an impact restart's recovery of its directives."""

from __future__ import annotations

import contextlib
from typing import Any

from shared.contracts.catalogue import IMPACT
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings


class _Reader:
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

    @contextlib.asynccontextmanager
    async def consuming(settings: KafkaSettings, purpose: str, *topics: str, **options: Any):
        seen.append(options)
        yield _Reader()

    monkeypatch.setattr(kafka, "consuming", consuming)
    settings = KafkaSettings(bootstrap="127.0.0.1:9")
    assert [r async for r in kafka.records_to_end(settings, IMPACT, "t")] == []
    assert [r async for r in kafka.records_to_end(settings, IMPACT, "t", fetch_max_wait_ms=200)] == []
    assert [o["fetch_max_wait_ms"] for o in seen] == [kafka.READ_TO_END_WAIT_MS, 200]
    assert kafka.READ_TO_END_WAIT_MS <= 50
