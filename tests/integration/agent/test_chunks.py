"""A revision missing a chunk on the real broker: never applied partially, failed once after the timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.agent.app import build
from shared.contracts.catalogue import ACKS
from tests.integration.agent.conftest import Commands, TopicReader, agent_settings, http, restrict_chunks, synced

CHUNK_TIMEOUT_S = 1.0


async def test_a_revision_missing_a_chunk_fails_once_naming_it_and_the_held_revision_stays(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive = f"c-{unique}", f"D-{unique}"
    agent = build(agent_settings(bootstrap, cluster, tmp_path).model_copy(update={"chunk_timeout_s": CHUNK_TIMEOUT_S}))
    async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
        await agent.start()
        try:
            await commands.send(synced(cluster))  # enforcement's answer to the agent's first heartbeat
            await commands.send(*restrict_chunks(cluster, directive, 1, [("fable-5", [4])]))
            first = await acks.wait_for(
                lambda m: m["type"] == "CommandApplied" and m["cluster_id"] == cluster, "revision 1 applied"
            )
            chunks = restrict_chunks(cluster, directive, 2, [("fable-5", [9]), ("mythos-5", [9]), ("fable-5", [8])])
            await commands.send(chunks[0], chunks[2])  # chunk 1 never comes
            failed = await acks.wait_for(
                lambda m: m["type"] == "CommandFailed" and m["cluster_id"] == cluster,
                "failure of the incomplete revision",
            )
            assert failed["revision"] == 2 and "chunks 1 of 3 missing" in failed["reason"]
            assert failed["causation_id"] == chunks[0].event_id and failed["correlation_id"] == directive
            async with http(agent) as client:
                state = (await client.get("/v1/state")).json()
                assert state["directives"][directive]["revision"] == 1 and state["staging"] == []
                assert state["directives"][directive]["digest"] == first["digest"]
                checks = [{"user": u, "model": m} for u in (4, 8, 9) for m in ("fable-5", "mythos-5")]
                results = (await client.post("/v1/access:batch", json={"checks": checks})).json()["results"]
            assert {(r["user"], r["model"]) for r in results if r["decision"] == "deny"} == {(4, "fable-5")}
            await asyncio.sleep(4 * CHUNK_TIMEOUT_S)
            await acks.wait_for(
                lambda m: (
                    m["type"] == "AgentHeartbeat"
                    and m["cluster_id"] == cluster
                    and m["occurred_at"] > failed["occurred_at"]
                ),
                "a later heartbeat",
            )
            failures = [m for m in acks.seen if m["type"] == "CommandFailed" and m["cluster_id"] == cluster]
            assert len(failures) == 1, "the missing chunk was reported more than once"
        finally:
            await agent.stop()
