"""On the real broker: the audit publishes signed tree heads; they are exported with the public keys, and the
ledger verifies against them and against the topics; a record dropped from the ledger is found missing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from devtools.waiting import eventually
from services.audit.cli import app as audit_cli
from services.audit.treehead import latest_head
from tests.integration.audit.conftest import audit_settings, produce, public_keys, recorded, started
from tests.unit.audit.records import directive_story

runner = CliRunner()


async def test_signed_heads_are_exported_and_the_ledger_verifies_against_them_and_the_topics(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    records = [(r.topic, r.key, r.value, []) for r in directive_story(f"EXP-{unique}", notices=3)]
    positions = await produce(bootstrap, records)
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    keys = tmp_path / "keys.json"
    keys.write_text(public_keys(settings).to_json())
    exported = tmp_path / "exported"
    audit = await started(settings)
    try:
        await eventually(lambda: len(recorded(settings.ledger_path, positions)) == len(positions), what="recorded")

        async def exported_head():
            result = await asyncio.to_thread(
                runner.invoke,
                audit_cli,
                ["checkpoints", "--export", str(exported), "--keys", str(keys), "--bootstrap", bootstrap],
            )
            assert result.exit_code == 0, result.output
            head = latest_head(exported)
            return head if head and head.size >= len(positions) else None

        await eventually(exported_head, what="a signed head covering the story")
    finally:
        await audit.stop()
    env = {"COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "300"}
    args = ["verify", "--ledger", str(settings.ledger_path), "--against", str(exported), "--grace", "0"]

    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "matches (latest exported head)" in result.output and "none extra" in result.output

    with sqlite3.connect(settings.ledger_path) as db:  # a record removed and the rest left as it was
        db.execute("DELETE FROM entries WHERE seq = (SELECT max(seq) FROM entries)")
    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=env)
    assert result.exit_code == 1 and "missing from the ledger" in result.output
