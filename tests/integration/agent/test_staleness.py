"""Staleness on a real broker that goes away: deny_models directives deny their models to everyone, keep ones keep.

The session broker is shared by every test, so this test runs a broker of its own and stops it under a
running agent process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.waiting import eventually
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics
from tests.integration.agent.conftest import AgentProcess, Commands, restrict_chunks, synced

pytestmark = pytest.mark.kafka  # a broker of its own, which the test stops
STALE_AFTER_S = 2.0


async def _decisions(client: httpx.AsyncClient, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], object]:
    try:
        response = await client.post("/v1/access:batch", json={"checks": [{"user": u, "model": m} for u, m in pairs]})
    except httpx.TransportError:
        return {pair: "down" for pair in pairs}
    if response.status_code != 200:
        return {pair: response.status_code for pair in pairs}
    return {(r["user"], r["model"]): r["decision"] for r in response.json()["results"]}


async def test_an_agent_that_loses_the_broker_applies_each_directives_stale_policy(
    unique: str, tmp_path: Path, kafka_secrets: Path
) -> None:
    own = LocalBroker(tmp_path / "kafka", secrets=kafka_secrets)
    await asyncio.to_thread(own.start)
    cluster = f"c-{unique}"
    agent = AgentProcess(own.bootstrap, cluster, tmp_path / "state", tmp_path, stale_after_s=STALE_AFTER_S)
    try:
        await apply_topics(KafkaSettings(bootstrap=own.bootstrap))
        agent.start()
        deny_models = [
            c.model_copy(update={"on_stale": "deny_models"})
            for c in restrict_chunks(cluster, f"D1-{unique}", 1, [("fable-5", [1])])
        ]
        async with Commands(own.bootstrap) as commands:
            await commands.send(
                synced(cluster), *deny_models, *restrict_chunks(cluster, f"D2-{unique}", 1, [("mythos-5", [1])])
            )
        pairs = [(1, "fable-5"), (5, "fable-5"), (1, "mythos-5"), (5, "mythos-5")]
        held = {(1, "fable-5"): "deny", (5, "fable-5"): "allow", (1, "mythos-5"): "deny", (5, "mythos-5"): "allow"}
        async with httpx.AsyncClient(base_url=agent.base_url, timeout=5.0) as client:

            async def applied() -> bool:
                return await _decisions(client, pairs) == held

            await eventually(applied, "both directives applied")
            await asyncio.sleep(2 * STALE_AFTER_S)  # heartbeats keep the agent in contact past the bound
            assert await _decisions(client, pairs) == held
            assert (await client.get("/v1/state")).json()["stale"] is False

            await asyncio.to_thread(own.stop)

            async def stale() -> bool:
                return (await _decisions(client, pairs))[(5, "fable-5")] == "deny"

            await eventually(stale, "fable-5 denied to everyone once stale")
            assert await _decisions(client, pairs) == {**held, (5, "fable-5"): "deny"}
            state = (await client.get("/v1/state")).json()
            assert state["stale"] is True and state["directives"][f"D1-{unique}"]["on_stale"] == "deny_models"
    finally:
        await asyncio.to_thread(agent.stop)
        await asyncio.to_thread(own.stop)
