"""The agent on the real broker: applies its cluster's commands, acks with the digest, answers checks."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import ACKS
from shared.contracts.serving import DeltaCommand
from tests.integration.agent.conftest import (
    MODELS,
    Commands,
    TopicReader,
    http,
    lift_command,
    new_agent,
    restrict_chunks,
    synced,
    wait_ready,
)

FABLE, MYTHOS = [1, 2, 3], [2, 5]
USERS = range(0, 10)


async def _decisions(agent) -> dict[tuple[int, str], str]:
    async with http(agent) as client:
        pairs = [{"user": u, "model": m} for u in USERS for m in MODELS]
        response = await client.post("/v1/access:batch", json={"checks": pairs})
        assert response.status_code == 200
        single = await client.get("/v1/access", params={"user": 2, "model": "mythos-5"})
        assert single.status_code == 200
        results = {(r["user"], r["model"]): r["decision"] for r in response.json()["results"]}
        assert results[(2, "mythos-5")] == single.json()["decision"]
        return results


async def test_agent_applies_its_commands_acks_the_digest_and_denies_exactly_the_set(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, other, directive = f"c-{unique}", f"c-other-{unique}", f"D-{unique}"
    agent = new_agent(bootstrap, cluster, tmp_path)
    async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
        await agent.start()
        try:
            await commands.send(synced(cluster))  # enforcement's answer to the agent's first heartbeat
            await wait_ready(agent)
            chunks = restrict_chunks(cluster, directive, 1, [("fable-5", FABLE), ("mythos-5", MYTHOS)])
            await commands.send(*restrict_chunks(other, directive, 1, [("fable-5", [7, 8])]))
            await commands.send(*chunks)

            applied = await acks.wait_for(
                lambda m: m["type"] == "CommandApplied" and m["cluster_id"] == cluster and m["action"] == "restrict",
                "restrict ack",
            )
            expected = scope_digest({"fable-5": set_digest(BitMap(FABLE)), "mythos-5": set_digest(BitMap(MYTHOS))})
            assert applied["digest"] == expected
            assert (applied["directive_id"], applied["revision"], applied["producer"]) == (directive, 1, "agent")
            assert applied["correlation_id"] == directive and applied["causation_id"] == chunks[-1].event_id

            denied = {(u, "fable-5") for u in FABLE} | {(u, "mythos-5") for u in MYTHOS}
            decisions = await _decisions(agent)
            assert {pair for pair, decision in decisions.items() if decision == "deny"} == denied

            lift = lift_command(cluster, directive, 1)
            await commands.send(lift)
            lifted = await acks.wait_for(
                lambda m: m["type"] == "CommandApplied" and m["cluster_id"] == cluster and m["action"] == "lift",
                "lift ack",
            )
            assert lifted["digest"] == scope_digest({}) and lifted["causation_id"] == lift.event_id
            assert set((await _decisions(agent)).values()) == {"allow"}

            beat = await acks.wait_for(
                lambda m: m["type"] == "AgentHeartbeat" and m["cluster_id"] == cluster and m["ready"],
                "a ready heartbeat",
            )
            assert beat["models"] == MODELS and beat["producer"] == "agent"
            assert not any(m.get("cluster_id") == other for m in acks.seen), "another cluster's command was acked"
        finally:
            await agent.stop()


async def test_a_corrupt_chunk_is_refused_with_a_reason_and_changes_nothing(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive = f"c-{unique}", f"D-{unique}"
    agent = new_agent(bootstrap, cluster, tmp_path)
    async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
        await agent.start()
        try:
            await commands.send(synced(cluster))  # enforcement's answer to the agent's first heartbeat
            await commands.send(*restrict_chunks(cluster, directive, 1, [("fable-5", [4])]))
            await acks.wait_for(lambda m: m["type"] == "CommandApplied" and m["cluster_id"] == cluster, "first ack")
            good, bad = restrict_chunks(cluster, directive, 2, [("fable-5", [9]), ("mythos-5", [9])])
            await commands.send(good, bad.model_copy(update={"users": "bm90IGEgYml0bWFw"}))
            failed = await acks.wait_for(
                lambda m: m["type"] == "CommandFailed" and m["cluster_id"] == cluster, "failure ack"
            )
            assert failed["revision"] == 2 and "chunk 1" in failed["reason"]
            await wait_ready(agent)
            decisions = await _decisions(agent)
            assert {pair for pair, decision in decisions.items() if decision == "deny"} == {(4, "fable-5")}
            async with http(agent) as client:
                state = (await client.get("/v1/state")).json()
            assert state["directives"][directive]["revision"] == 1 and state["staging"] == []
        finally:
            await agent.stop()


async def test_resent_revisions_are_reacked_and_deltas_apply_in_seq_order(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive = f"c-{unique}", f"D-{unique}"
    agent = new_agent(bootstrap, cluster, tmp_path)

    def delta(seq: int, added: list[int], removed: list[int]) -> DeltaCommand:
        return DeltaCommand(
            producer="enforcement",
            cluster_id=cluster,
            directive_id=directive,
            revision=1,
            seq=seq,
            model="fable-5",
            added=encode_bitmap(BitMap(added)),
            removed=encode_bitmap(BitMap(removed)),
        )

    def ours(kind: str):
        return lambda m: m["type"] == "CommandApplied" and m["cluster_id"] == cluster and m["action"] == kind

    async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
        await agent.start()
        try:
            await commands.send(synced(cluster))  # enforcement's answer to the agent's first heartbeat
            chunks = restrict_chunks(cluster, directive, 1, [("fable-5", [1, 2])])
            await commands.send(*chunks)
            first = await acks.wait_for(ours("restrict"), "restrict ack")
            resent = [c.model_copy(update={"event_id": f"resend-{unique}"}) for c in chunks]
            await commands.send(*resent)
            again = await acks.wait_for(
                lambda m: ours("restrict")(m) and m["causation_id"] == resent[0].event_id,
                "re-ack of the resent revision",
            )
            assert again["digest"] == first["digest"]

            await commands.send(delta(2, [9], []), delta(1, [], [1]))
            applied = await acks.wait_for(lambda m: ours("delta")(m) and m["seq"] == 2, "delta ack at seq 2")
            assert applied["digest"] == scope_digest({"fable-5": set_digest(BitMap([2, 9]))})
            await wait_ready(agent)
            decisions = await _decisions(agent)
            assert {pair for pair, decision in decisions.items() if decision == "deny"} == {
                (2, "fable-5"),
                (9, "fable-5"),
            }
        finally:
            await agent.stop()
