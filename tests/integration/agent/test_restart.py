"""A restarted agent answers 503 until it has caught up, then denies every pair denied before: never allow."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devtools.waiting import eventually
from shared.contracts.catalogue import ACKS
from tests.integration.agent.conftest import (
    MODELS,
    Commands,
    TopicReader,
    http,
    new_agent,
    restrict_chunks,
    synced,
    wait_ready,
)

D1_FABLE, D2_MYTHOS, D3_FABLE = [10, 11], [11, 12], [20]


async def _watch(agent, pairs: list[tuple[int, str]], seen: list[tuple[int, str, object]], stop: asyncio.Event) -> None:
    """Keep asking for the previously denied pairs, recording every answer."""
    async with http(agent) as client:
        while not stop.is_set():
            for user, model in pairs:
                response = await client.get("/v1/access", params={"user": user, "model": model})
                answer = response.json()["decision"] if response.status_code == 200 else response.status_code
                seen.append((user, model, answer))
            await asyncio.sleep(0.02)


async def test_restart_recovers_before_answering_and_never_serves_a_denied_pair(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, d1, d2, d3 = f"c-{unique}", f"D1-{unique}", f"D2-{unique}", f"D3-{unique}"
    denied = [(u, "fable-5") for u in D1_FABLE] + [(u, "mythos-5") for u in D2_MYTHOS]
    async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
        first = new_agent(bootstrap, cluster, tmp_path)
        await first.start()
        try:
            await commands.send(synced(cluster))  # recorded: the restarted agent becomes ready without another
            await commands.send(
                *restrict_chunks(cluster, d1, 1, [("fable-5", D1_FABLE)]),
                *restrict_chunks(cluster, d2, 1, [("mythos-5", D2_MYTHOS)]),
            )
            for directive in (d1, d2):
                await acks.wait_for(
                    lambda m, d=directive: m["type"] == "CommandApplied" and m["directive_id"] == d,
                    f"ack of {directive}",
                )
        finally:
            await first.stop()

        # While the agent is down a new directive arrives: the next instance must catch up on it.
        await commands.send(*restrict_chunks(cluster, d3, 1, [("fable-5", D3_FABLE)]))

        second = new_agent(bootstrap, cluster, tmp_path)
        await second.open()  # snapshot loaded, HTTP up, not consuming yet
        seen: list[tuple[int, str, object]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch(second, denied, seen, stop))
        try:
            async with http(second) as client:
                assert (await client.get("/v1/access", params={"user": 10, "model": "fable-5"})).status_code == 503
                assert (await client.get("/readyz")).status_code == 503
                recovered = (await client.get("/v1/state")).json()
                assert set(recovered["directives"]) == {d1, d2} and recovered["ready"] is False
            await second.consume()
            await wait_ready(second)
            await acks.wait_for(
                lambda m: (
                    m["type"] == "CommandApplied"
                    and m["directive_id"] == d3
                    and m["causation_id"] is not None
                    and m["cluster_id"] == cluster
                ),
                "ack of d3",
            )

            async def all_denied_seen() -> bool:
                return any(answer == "deny" for *_, answer in seen)

            await eventually(all_denied_seen, "a deny answer after catching up")
            stop.set()
            await watcher

            assert {answer for *_, answer in seen} <= {503, "deny"}, "a previously denied pair was allowed"
            assert 503 in {answer for *_, answer in seen}
            async with http(second) as client:
                checks = [{"user": u, "model": m} for u in range(9, 22) for m in MODELS]
                results = (await client.post("/v1/access:batch", json={"checks": checks})).json()["results"]
            now_denied = {(r["user"], r["model"]) for r in results if r["decision"] == "deny"}
            assert now_denied == set(denied) | {(u, "fable-5") for u in D3_FABLE}
            not_ready_beat = await acks.wait_for(
                lambda m: (
                    m["type"] == "AgentHeartbeat"
                    and m["cluster_id"] == cluster
                    and not m["ready"]
                    and set(m["held"]) == {d1, d2}
                ),
                "heartbeat of the recovering agent",
            )
            assert not_ready_beat["held"][d1]["revision"] == 1
        finally:
            stop.set()
            await watcher
            await second.stop()
