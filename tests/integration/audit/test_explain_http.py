"""On the real broker: the running audit's `GET /v1/explain` (from its ledger's index) answers exactly what
`countermand audit explain --json` reads from the topics, and a restarted audit keeps answering."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cli.main import app
from devtools.waiting import eventually
from services.audit.app import RECORDED_TOPICS
from tests.integration.audit.conftest import (
    audit_settings,
    end_offsets,
    produce,
    recorded_all,
    records_below,
    started,
)
from tests.unit.audit.evidence_story import at, story

runner = CliRunner()


async def cli_explain(bootstrap: str, user: int, moment: str) -> str:
    env = {"COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "250"}
    args = ["audit", "explain", str(user), "fable-5", "--at", moment, "--json"]
    result = await asyncio.to_thread(runner.invoke, app, args, env=env)
    assert result.exit_code == 0, result.output
    return result.output[result.output.index('{\n  "user"') :]  # the running audit logs to the same stdout


async def http_explain(audit, user: int, moment: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=audit.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        return await client.get("/v1/explain", params={"user": user, "model": "fable-5", "at": moment})


async def test_the_audit_answers_over_http_what_the_cli_reads_from_the_topics(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    await produce(bootstrap, [(t, k, v, []) for t, k, v in story(f"EXP-{unique}")])
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    ends = await end_offsets(bootstrap, RECORDED_TOPICS)
    # Every record written so far (nothing is compacted within a session; transaction markers are no records).
    total = sum(len(offsets) for offsets in (await records_below(bootstrap, ends)).values())

    async def caught_up(audit) -> bool:
        return len(await asyncio.to_thread(recorded_all, settings.ledger_path)) >= total

    audit = await started(settings)
    try:
        await eventually(lambda: caught_up(audit), what="the audit caught up with the topics", timeout=120)
        for user, seconds in ((7, 30), (9, 100), (10, 100)):
            moment = at(seconds).isoformat()
            answer = await http_explain(audit, user, moment)
            assert answer.status_code == 200, answer.text
            assert answer.text == (await cli_explain(bootstrap, user, moment)).rstrip("\n")
        unknown = await http_explain(audit, 987654321, at(30).isoformat())
        assert unknown.status_code == 404 and "987654321" in unknown.text
    finally:
        await audit.stop()

    again = await started(settings)  # reopened from the stored frontier and index
    try:
        answer = await http_explain(again, 7, at(30).isoformat())
        assert answer.status_code == 200
        assert answer.text == (await cli_explain(bootstrap, 7, at(30).isoformat())).rstrip("\n")
    finally:
        await again.stop()
