"""On the real broker, with no service state at all: report, explain and at read the topics, publish nothing,
and give the answers the evidence holds; bad inputs exit non-zero with a clear message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from services.audit.app import RECORDED_TOPICS
from shared.contracts.catalogue import AUDIT
from tests.integration.audit.conftest import end_offsets, produce
from tests.unit.audit.evidence_story import at, story

runner = CliRunner()


async def invoke(bootstrap: str, *args: str):
    env = {"COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "250"}
    return await asyncio.to_thread(runner.invoke, app, ["audit", *args], env=env)


async def test_report_explain_and_at_from_the_topics_alone(bootstrap: str, unique: str, tmp_path: Path) -> None:
    directive_id = f"EXP-{unique}"
    await produce(bootstrap, [(t, k, v, []) for t, k, v in story(directive_id)])
    topics = RECORDED_TOPICS + (AUDIT.name,)
    before = await end_offsets(bootstrap, topics)

    result = await invoke(
        bootstrap,
        "report",
        directive_id,
        "--no-reproduce",
        "--json",
        str(tmp_path / "r.json"),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "r.json").read_text())
    assert {d["kind"] for d in document["discrepancies"]} >= {
        "missing_ack",
        "enforced_after_deadline",
        "missing_notice",
    }
    assert "<svg" in (tmp_path / "r.html").read_text()

    # user ids repeat across tests on the session broker: the answer is about this directive
    result = await invoke(bootstrap, "explain", "7", "fable-5", "--at", at(30).isoformat(), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    mine = [d for d in answer["directives"] if d["directive_id"] == directive_id]
    assert mine and mine[0]["covered"] and mine[0]["clusters"]["us-east"]["digest_matches"]

    result = await invoke(bootstrap, "at", at(100).isoformat(), "--json")
    assert result.exit_code == 0 and directive_id in {
        d["directive_id"] for d in json.loads(result.output)["directives"]
    }

    assert await end_offsets(bootstrap, topics) == before  # read-only


async def test_bad_inputs_exit_non_zero_with_a_clear_message(bootstrap: str, unique: str) -> None:
    await produce(bootstrap, [(t, k, v, []) for t, k, v in story(f"EXP-{unique}")])
    cases = [
        (["report", "EXP-NO-SUCH-ONE", "--no-reproduce"], "EXP-NO-SUCH-ONE"),
        (["report", f"EXP-{unique}", "--no-reproduce", "--from", "2031-01-01T00:00:00Z"], "no event"),
        (["report", f"EXP-{unique}", "--from", "yesterday"], "not an ISO 8601 time"),
        (["explain", "987654321", "fable-5", "--at", at(30).isoformat()], "987654321"),
        (["explain", "7", "fable-5", "--at", "1990-01-01T00:00:00Z"], "before any recorded event"),
        (["at", "1990-01-01T00:00:00Z"], "before any recorded event"),
    ]
    for args, message in cases:
        result = await invoke(bootstrap, *args)
        assert result.exit_code != 0 and message in " ".join(result.output.split()), (args, result.output)
