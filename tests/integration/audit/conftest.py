"""Fixtures and helpers of the audit integration tests: the audit in-process on the session broker, raw records
produced for it, its ledger and topics read back."""

from __future__ import annotations

from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from services.audit.app import RECORDED_TOPICS, AuditService, build
from services.audit.ledger import Ledger
from services.audit.settings import AuditSettings
from shared.contracts.catalogue import BY_NAME
from shared.runtime.auth import AuthSettings
from shared.runtime.kafka import end_offsets as topic_end_offsets
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.signing import KeySet, Signer

Position = tuple[str, int, int]


def audit_settings(bootstrap: str, state_dir: Path, group: str, **extra: object) -> AuditSettings:
    """Settings of an audit under test, signing with a key of its own (state_dir/audit.pem, key id = group)."""
    key = state_dir / "audit.pem"
    if not key.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        key.write_bytes(Signer.generate(group).pem())
    extra = {"signing_key_file": key, "signing_key_id": group, "auth": AuthSettings(mode="off"), **extra}
    return AuditSettings(
        kafka=KafkaSettings(bootstrap=bootstrap), state_dir=state_dir, group=group, checkpoint_interval_s=0.5, **extra
    )


def public_keys(settings: AuditSettings) -> KeySet:
    """The JWK set that verifies the heads of an audit under test."""
    return KeySet([Signer.from_pem(settings.signing_key_id, settings.signing_key_file).public()])


async def started(settings: AuditSettings, ledger: Ledger | None = None) -> AuditService:
    audit = build(settings, ledger)
    await audit.start()
    return audit


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, list]]) -> list[Position]:
    """Send (topic, key, value, headers) records in order; their positions once acknowledged."""
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-audit-records") as producer:
        positions = []
        for topic, key, value, headers in records:
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers or None)
            positions.append((meta.topic, meta.partition, meta.offset))
        return positions


def recorded(ledger_path: Path, positions: list[Position]) -> dict[Position, object]:
    """The ledger entries at these positions (empty until the ledger exists)."""
    if not ledger_path.exists():
        return {}
    ledger = Ledger(ledger_path, read_only=True)
    try:
        wanted = set(positions)
        return {
            (e.record.topic, e.record.partition, e.record.offset): e
            for e in ledger.entries()
            if (e.record.topic, e.record.partition, e.record.offset) in wanted
        }
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
    """The next offset of every partition of these topics."""
    settings = KafkaSettings(bootstrap=bootstrap)
    return {
        TopicPartition(name, p): end
        for name in topics
        for p, end in (await topic_end_offsets(settings, BY_NAME[name], "tests")).items()
    }


async def records_below(bootstrap: str, ends: dict[TopicPartition, int]) -> dict[TopicPartition, list[int]]:
    """The offsets of the records below `ends`, per partition. Not every offset holds a record: a transaction's
    commit marker takes one too (intake publishes directive events in transactions), and no consumer sees it."""
    settings = KafkaSettings(bootstrap=bootstrap)
    found: dict[TopicPartition, list[int]] = {tp: [] for tp in ends}
    for name in sorted({tp.topic for tp in ends}):
        until = {tp.partition: end for tp, end in ends.items() if tp.topic == name}
        async for record in records_to_end(settings, BY_NAME[name], "tests-audit-count", until=until):
            found[TopicPartition(name, record.partition)].append(record.offset)
    return found


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record currently on a topic."""
    return [r async for r in records_to_end(KafkaSettings(bootstrap=bootstrap), BY_NAME[topic], "tests-audit-read")]
