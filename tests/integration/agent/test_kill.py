"""kill -9: a real agent process killed while holding restrictions never serves a denied pair after restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from devtools.waiting import eventually
from shared.contracts.catalogue import ACKS
from tests.integration.agent.conftest import AgentProcess, Commands, TopicReader, restrict_chunks, synced

D1_FABLE, D2_MYTHOS, D3_FABLE = [10, 11], [11, 12], [20]
CONTROL = (13, "fable-5")  # never restricted: must be allowed whenever the agent answers


class Poller:
    """Asks for every watched pair again and again, recording each answer (or 'down' when nobody listens)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=5.0)
        self.pairs: list[tuple[int, str]] = [CONTROL]
        self.answers: list[tuple[int, str, object]] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            for user, model in list(self.pairs):
                self.answers.append((user, model, await self._ask(user, model)))
            await asyncio.sleep(0.01)
        await self.client.aclose()

    async def _ask(self, user: int, model: str) -> object:
        try:
            response = await self.client.get("/v1/access", params={"user": user, "model": model})
        except httpx.TransportError:
            return "down"
        return response.json()["decision"] if response.status_code == 200 else response.status_code

    def since(self, mark: int) -> list[tuple[int, str, object]]:
        return self.answers[mark:]

    async def until(self, pair: tuple[int, str], answer: object, mark: int = 0) -> None:
        async def seen() -> bool:
            return (*pair, answer) in self.since(mark)

        await eventually(seen, f"{answer} for {pair}")


async def test_an_agent_killed_with_sigkill_recovers_and_never_allows_a_denied_pair(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, d1, d2, d3 = f"c-{unique}", f"D1-{unique}", f"D2-{unique}", f"D3-{unique}"
    agent = AgentProcess(bootstrap, cluster, tmp_path / "state", tmp_path)
    denied = [(u, "fable-5") for u in D1_FABLE] + [(u, "mythos-5") for u in D2_MYTHOS]
    poller = Poller(agent.base_url)
    polling = asyncio.create_task(poller.run())
    try:
        async with TopicReader(bootstrap, ACKS.name) as acks, Commands(bootstrap) as commands:
            await commands.send(synced(cluster))  # enforcement's answer to the agent's first heartbeat
            agent.start()
            await poller.until(CONTROL, "allow")
            await commands.send(
                *restrict_chunks(cluster, d1, 1, [("fable-5", D1_FABLE)]),
                *restrict_chunks(cluster, d2, 1, [("mythos-5", D2_MYTHOS)]),
            )
            for directive in (d1, d2):
                await acks.wait_for(
                    lambda m, d=directive: m["type"] == "CommandApplied" and m["directive_id"] == d,
                    f"ack of {directive}",
                )
            poller.pairs.extend(denied)
            for pair in denied:
                await poller.until(pair, "deny")

            assert agent.kill() == -signal.SIGKILL  # while it holds both restrictions
            killed_at = len(poller.answers)
            await poller.until(CONTROL, "down", killed_at)
            await commands.send(*restrict_chunks(cluster, d3, 1, [("fable-5", D3_FABLE)]))  # sent while down
            poller.pairs.append((D3_FABLE[0], "fable-5"))

            agent.start()  # same state dir, same port
            await poller.until((D3_FABLE[0], "fable-5"), "deny", killed_at)
            await poller.until(CONTROL, "allow", killed_at)
            await acks.wait_for(lambda m: m["type"] == "CommandApplied" and m["directive_id"] == d3, "ack of d3")
    finally:
        poller.stop.set()
        await polling
        agent.stop()

    watched = set(denied) | {(D3_FABLE[0], "fable-5")}
    allowed = [(u, m) for u, m, answer in poller.answers if (u, m) in watched and answer == "allow"]
    assert allowed == [], f"a denied pair was allowed: {allowed[:5]}"
    after_kill = {answer for *_, answer in poller.since(killed_at)}
    assert {"down", 503, "deny", "allow"} <= after_kill, after_kill  # down, recovering, then answering
    assert {answer for u, m, answer in poller.answers if (u, m) in watched} <= {"down", 503, "deny"}
