"""The audit on the real broker: everything recorded once, chained, reported and replayed read-only."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from devtools.waiting import eventually
from services.audit.app import RECORDED_TOPICS
from services.audit.chain import verify
from services.audit.cli import app as audit_cli
from services.audit.ledger import Ledger
from services.audit.timeline import timeline
from shared.contracts.audit import AuditCheckpoint
from shared.contracts.catalogue import AUDIT
from shared.contracts.users import UserUpserted
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings
from tests.integration.audit.conftest import (
    audit_settings,
    end_offsets,
    produce,
    read_all,
    recorded,
    recorded_all,
    records_below,
    started,
)
from tests.unit.audit.records import directive_story

POISON = b"\x00\x01 not json at all"


def story(directive_id: str, user_id: int) -> list[tuple]:
    """Contract messages of one directive, a user upsert and its tombstone, and a poison value."""
    start = datetime.now(UTC) - timedelta(seconds=30)  # before the poison's Kafka timestamp
    records = [(r.topic, r.key, r.value, []) for r in directive_story(directive_id, notices=4, t0=start)]
    user = UserUpserted(
        producer="loader",
        user_id=user_id,
        email="ada@example.com",
        nationalities=["FR"],
        residence="US",
        account_type="consumer",
    )
    key = str(user_id).encode()
    return records + [
        ("identity.users.v1", key, user.model_dump_json().encode(), [("traceparent", b"00-abc")]),
        ("identity.users.v1", key, None, []),
        ("compliance.directives.v1", directive_id.encode(), POISON, [("binary", b"\xff\xfe")]),
    ]


async def test_every_message_is_recorded_once_in_a_chain_that_verifies(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive_id, user_id = f"EXP-{unique}", abs(hash(unique)) % 2**31
    positions = await produce(bootstrap, story(directive_id, user_id))
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    audit = await started(settings)
    try:
        entries = await eventually(
            lambda: (
                len(recorded(settings.ledger_path, positions)) == len(positions)
                and recorded(settings.ledger_path, positions)
            ),
            what="story in the ledger",
        )
        later = await produce(
            bootstrap,
            [
                (
                    "compliance.enforcement.v1",
                    directive_id.encode(),
                    b'{"type": "Late", "correlation_id": "' + directive_id.encode() + b'"}',
                    [],
                )
            ],
        )
        await eventually(lambda: recorded(settings.ledger_path, later), what="message after the poison")
    finally:
        await audit.stop()

    poison, tombstone = entries[positions[-1]], entries[positions[-2]]
    assert poison.record.value == POISON and poison.envelope.type is None
    assert poison.record.headers == (("binary", b"\xff\xfe"),)
    assert tombstone.record.value is None and tombstone.record.key == str(user_id).encode()
    assert entries[positions[-3]].record.headers == (("traceparent", b"00-abc"),)
    ledger = Ledger(settings.ledger_path, read_only=True)
    try:
        verdict = verify(ledger.entries())
        lines = timeline(ledger.entries_of(directive_id), directive_id)
    finally:
        ledger.close()
    assert verdict.intact and verdict.checked >= len(positions) + 1
    assert [line.event for line in lines] == [
        "DirectiveIssued",
        "ImpactAssessed",
        "DirectiveEnforced",
        "NotificationDelivered",
        "unparsable",
        "Late",
    ]
    assert lines[3].summary == "NotificationDelivered x 4"


async def test_a_checkpoint_carries_the_ledger_length_and_head_hash(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    positions = await produce(bootstrap, story(f"EXP-{unique}", abs(hash(unique)) % 2**31))
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    audit = await started(settings)
    try:
        await eventually(
            lambda: len(recorded(settings.ledger_path, positions)) == len(positions), what="story in the ledger"
        )

        async def published() -> list[AuditCheckpoint]:
            records = await read_all(bootstrap, AUDIT.name)
            return [AuditCheckpoint.model_validate_json(r.value) for r in records]

        async def matching() -> list[AuditCheckpoint]:
            hashes = {e.seq: e.hash for e in recorded_all(settings.ledger_path)}
            return [
                c for c in await published() if c.entries >= len(positions) and hashes.get(c.entries) == c.head_hash
            ]

        mine = await eventually(matching, "a checkpoint matching this ledger")
        assert mine[0].producer == "audit" and mine[0].ledger == "main"
    finally:
        await audit.stop()


async def committed(bootstrap: str, group: str) -> dict:
    async with admin(KafkaSettings(bootstrap=bootstrap), "tests-audit") as client:
        return {tp: meta.offset for tp, meta in (await client.list_consumer_group_offsets(group)).items()}


async def caught_up(bootstrap: str, group: str, ends: dict, timeout: float = 60.0) -> None:
    # A group commits its last record + 1, which stops short of a transaction's trailing commit marker.
    last = {tp: offsets[-1] + 1 for tp, offsets in (await records_below(bootstrap, ends)).items() if offsets}
    for _ in range(int(timeout / 0.5)):
        done = await committed(bootstrap, group)
        if all(done.get(tp, 0) >= end for tp, end in last.items()):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"group {group} did not catch up")


async def test_redelivery_to_a_fresh_group_appends_nothing(bootstrap: str, unique: str, tmp_path: Path) -> None:
    await produce(bootstrap, story(f"EXP-{unique}", abs(hash(unique)) % 2**31))
    ends = await end_offsets(bootstrap)
    first = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}-a")
    audit = await started(first)
    try:
        await caught_up(bootstrap, first.group, ends)
    finally:
        await audit.stop()
    before = recorded_all(first.ledger_path)

    second = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}-b")
    audit = await started(second)
    try:
        await caught_up(bootstrap, second.group, ends)
    finally:
        await audit.stop()
    after = recorded_all(second.ledger_path)

    records = sum(len(offsets) for offsets in (await records_below(bootstrap, ends)).values())
    assert len(before) == records and [e.hash for e in after] == [e.hash for e in before]
    assert verify(after).intact


async def test_replay_prints_the_directive_and_publishes_nothing(bootstrap: str, unique: str, tmp_path: Path) -> None:
    directive_id = f"EXP-{unique}"
    positions = await produce(bootstrap, story(directive_id, abs(hash(unique)) % 2**31))
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    audit = await started(settings)
    try:
        await eventually(
            lambda: len(recorded(settings.ledger_path, positions)) == len(positions), what="story in the ledger"
        )
    finally:
        await audit.stop()
    topics = RECORDED_TOPICS + (AUDIT.name,)
    before = await end_offsets(bootstrap, topics)

    result = CliRunner().invoke(audit_cli, ["replay", directive_id, "--ledger", str(settings.ledger_path), "--json"])

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [e["type"] for e in events] == ["DirectiveIssued", "ImpactAssessed", "DirectiveEnforced"] + [
        "NotificationDelivered"
    ] * 4 + [None]
    assert events[-1]["value_b64"] is not None
    assert await end_offsets(bootstrap, topics) == before
