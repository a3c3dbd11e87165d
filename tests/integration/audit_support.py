"""Running the audit in-process on the session broker and producing raw records for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.audit.app import RECORDED_TOPICS, AuditService, build
from services.audit.ledger import Ledger
from services.audit.settings import AuditSettings
from shared.runtime.settings import KafkaSettings

Position = tuple[str, int, int]


def audit_settings(bootstrap: str, state_dir: Path, group: str, **extra: object) -> AuditSettings:
    return AuditSettings(kafka=KafkaSettings(bootstrap=bootstrap), state_dir=state_dir, group=group,
                         checkpoint_interval_s=0.5, **extra)


async def started(settings: AuditSettings, ledger: Ledger | None = None) -> AuditService:
    audit = build(settings, ledger)
    await audit.start()
    return audit


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, list]]) -> list[Position]:
    """Send (topic, key, value, headers) records in order; their positions once acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        positions = []
        for topic, key, value, headers in records:
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers or None)
            positions.append((meta.topic, meta.partition, meta.offset))
        return positions
    finally:
        await producer.stop()


async def eventually(check: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    """Poll until check() returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def recorded(ledger_path: Path, positions: list[Position]) -> dict[Position, object]:
    """The ledger entries at these positions (empty until the ledger exists)."""
    if not ledger_path.exists():
        return {}
    ledger = Ledger(ledger_path, read_only=True)
    try:
        wanted = set(positions)
        return {(e.record.topic, e.record.partition, e.record.offset): e for e in ledger.entries()
                if (e.record.topic, e.record.partition, e.record.offset) in wanted}
    finally:
        ledger.close()


def recorded_all(ledger_path: Path) -> list:
    """Every entry of the ledger in seq order."""
    ledger = Ledger(ledger_path, read_only=True)
    try:
        return list(ledger.entries())
    finally:
        ledger.close()


async def end_offsets(bootstrap: str, topics: tuple[str, ...] = RECORDED_TOPICS) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if any(not consumer.partitions_for_topic(t) for t in topics):
            await consumer._client.force_metadata_update()  # noqa: SLF001 - metadata for every topic
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))]
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, timeout: float = 3.0) -> list:
    """Every record currently on a topic."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        records, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()
