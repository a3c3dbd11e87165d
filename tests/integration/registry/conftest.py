"""Helpers of the registry loader's tests: identity.users.v1 read back on the session broker."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from shared.contracts.catalogue import USERS
from shared.runtime.kafka import end_offsets as topic_end_offsets
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings


async def end_offsets(bootstrap: str) -> dict[int, int]:
    """Partition -> the next offset of identity.users.v1."""
    return await topic_end_offsets(KafkaSettings(bootstrap=bootstrap), USERS, "tests-registry")


async def read_since(bootstrap: str, since: dict[int, int]) -> list[ConsumerRecord]:
    """Every record produced to identity.users.v1 at or after the `since` offsets (up to the current end)."""
    records = records_to_end(KafkaSettings(bootstrap=bootstrap), USERS, "tests-registry-read")
    return [r async for r in records if r.offset >= since.get(r.partition, 0)]
