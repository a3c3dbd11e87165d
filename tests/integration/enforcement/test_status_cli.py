"""`countermand status` reads the enforcement topic back and shows each cluster's state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyroaring import BitMap
from typer.testing import CliRunner

from devtools.waiting import eventually
from services.enforcement.cli import app
from shared.contracts.catalogue import ENFORCEMENT, IMPACT
from tests.integration.enforcement.conftest import FakeAgent, TopicReader, impact, publish, running


async def test_status_shows_applied_and_overdue_clusters_of_a_directive(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, fable = f"D-{unique}", f"fable-{unique}"
    assessed, *chunks = impact(directive, {fable: BitMap(range(10))}, deadline_s=1)
    assessed = assessed.model_copy(update={"losing_by_model": {fable: 7}})
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        FakeAgent(bootstrap, f"ok-{unique}", [fable]) as ok,
        FakeAgent(bootstrap, f"mute-{unique}", [fable], mode="silent") as mute,
        running(bootstrap, tmp_path) as service,
    ):
        await eventually(lambda: {ok.cluster, mute.cluster} <= set(service.core.clusters), what="heartbeats")
        await publish(bootstrap, IMPACT, assessed, *chunks)
        await eventually(
            lambda: [
                p
                for p in status.where(type="EnforcementProgressed", directive_id=directive)
                if p.clusters.get(ok.cluster)
                and p.clusters[ok.cluster].state == "applied"
                and p.clusters[mute.cluster].state == "overdue"
            ],
            what="applied and overdue",
        )

    runner = CliRunner()
    one = await asyncio.to_thread(runner.invoke, app, [directive, "--bootstrap", bootstrap], env={"COLUMNS": "250"})
    assert one.exit_code == 0, one.output
    rows = {line.split("│")[1].strip(): line for line in one.output.splitlines() if line.count("│") > 3}
    assert "applied" in rows[ok.cluster] and "overdue" in rows[mute.cluster]
    assert f"{directive} r1 restrict" in one.output and "overdue" in one.output.splitlines()[0] + one.output
    assert [c.strip() for c in rows[fable].split("│")[1:-1]] == [fable, "10", "7"]  # covered, losing access

    every = await asyncio.to_thread(runner.invoke, app, ["--bootstrap", bootstrap], env={"COLUMNS": "250"})
    assert every.exit_code == 0, every.output
    [line] = [row for row in every.output.splitlines() if directive in row]
    assert "overdue" in line and "1/2" in line and f"{fable} 10/7" in line

    missing = await asyncio.to_thread(runner.invoke, app, ["NOPE-" + unique, "--bootstrap", bootstrap])
    assert missing.exit_code == 1 and "directive_id" in missing.output
