"""Enforcement with the real agents (services.agent.app, in-process) on the real broker.

Impact's side is played by the test: ImpactAssessed + chunks; a lift's chunks hold the restored set.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from pyroaring import BitMap

from devtools.waiting import eventually
from shared.contracts.catalogue import ENFORCEMENT, IMPACT
from tests.integration.enforcement.conftest import (
    TopicReader,
    denials,
    impact,
    pairs,
    publish,
    ready,
    real_agent,
    running,
)

USERS = range(0, 70)


def overlapping(fable: str, mythos: str) -> dict[str, dict[str, BitMap]]:
    """Three directives whose sets overlap pairwise and all three at once (users 30..34 on fable)."""
    return {
        "A": {fable: BitMap(range(0, 40)), mythos: BitMap(range(10, 30))},
        "B": {fable: BitMap(range(20, 60))},
        "C": {fable: BitMap(range(30, 50)), mythos: BitMap(range(0, 15))},
    }


def restored(lifted: dict[str, BitMap], remaining: list[dict[str, BitMap]]) -> dict[str, BitMap]:
    """What impact assesses for a lift: the directive's users no remaining directive covers, per model."""
    return {m: users - BitMap.union(BitMap(), *(d.get(m, BitMap()) for d in remaining)) for m, users in lifted.items()}


async def until_ready(agent, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await ready(agent):
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for agent readiness"
        await asyncio.sleep(0.05)


def enforced(status: TopicReader, directive: str, action: str) -> list:
    return status.where(type="DirectiveEnforced", directive_id=directive, action=action)


@pytest.mark.parametrize("order", list(itertools.permutations("ABC")), ids="-".join)
async def test_lifting_overlapping_directives_in_any_order_leaves_exactly_the_union_of_the_rest(
    bootstrap: str, unique: str, tmp_path: Path, order: tuple[str, ...]
) -> None:
    fable, mythos = f"fable-{unique}", f"mythos-{unique}"
    sets = overlapping(fable, mythos)
    ids = {name: f"D{name}-{unique}" for name in sets}
    served = {f"both-{unique}": [fable, mythos], f"fable-{unique}": [fable], f"mythos-{unique}": [mythos]}
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        running(bootstrap, tmp_path / "enforcement") as service,
        real_agent(bootstrap, f"both-{unique}", served[f"both-{unique}"], tmp_path) as both,
        real_agent(bootstrap, f"fable-{unique}", served[f"fable-{unique}"], tmp_path) as fable_only,
        real_agent(bootstrap, f"mythos-{unique}", served[f"mythos-{unique}"], tmp_path) as mythos_only,
    ):
        agents = [both, fable_only, mythos_only]
        await eventually(lambda: set(served) <= set(service.core.clusters), what="heartbeats of the three agents")

        async def deny_exactly(active: list[str]) -> None:
            for agent in agents:
                models = served[agent.settings.cluster_id]
                expected = set().union(*(pairs(sets[name], models) for name in active))
                assert await denials(agent, USERS, models) == expected, (agent.settings.cluster_id, active)

        for name in sets:
            await publish(bootstrap, IMPACT, *impact(ids[name], sets[name], ids_per_chunk=15))
        for name in sets:
            await eventually(lambda name=name: enforced(status, ids[name], "restrict"), what=f"{name} restricted")
        await deny_exactly(list(sets))

        active = list(sets)
        for name in order:
            active.remove(name)
            back = restored(sets[name], [sets[other] for other in active])
            await publish(bootstrap, IMPACT, *impact(ids[name], back, action="lift", ids_per_chunk=15))
            [lift] = await eventually(lambda name=name: enforced(status, ids[name], "lift"), what=f"{name} lifted")
            assert set(lift.clusters) == {c for c, models in served.items() if set(models) & set(sets[name])}
            await deny_exactly(active)
        assert not [
            r
            for r in service.core.rollouts.values()
            if r.directive_id in ids.values() and r.action == "restrict" and r.active
        ]


async def test_a_cluster_joining_later_ends_up_holding_every_active_restriction(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    fable, mythos = f"fable-{unique}", f"mythos-{unique}"
    sets = overlapping(fable, mythos)
    ids = {name: f"D{name}-{unique}" for name in sets}
    models = [fable, mythos]
    late_id = f"late-{unique}"
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        running(bootstrap, tmp_path / "enforcement") as service,
        real_agent(bootstrap, f"early-{unique}", models, tmp_path),
    ):
        await eventually(lambda: f"early-{unique}" in service.core.clusters, what="early agent heartbeat")
        for name in ("A", "B", "C"):
            await publish(bootstrap, IMPACT, *impact(ids[name], sets[name], ids_per_chunk=15))
        await eventually(lambda: all(enforced(status, d, "restrict") for d in ids.values()), what="restricted")
        await publish(
            bootstrap, IMPACT, *impact(ids["C"], restored(sets["C"], [sets["A"], sets["B"]]), action="lift")
        )  # C is no longer active when the late one joins
        await eventually(lambda: enforced(status, ids["C"], "lift"), what="C lifted")

        async with real_agent(bootstrap, late_id, models, tmp_path) as late:
            await eventually(
                lambda: {ids["A"], ids["B"]} <= set(late.holding.state.held), what="late agent holds A and B"
            )
            assert ids["C"] not in late.holding.state.held
            for name in ("A", "B"):
                track = await eventually(
                    lambda name=name: service.core.rollouts[(ids[name], 1, "restrict")].clusters.get(late_id),
                    what=f"{name} targets the late cluster",
                )
                await eventually(lambda track=track: track.applied, what=f"late cluster acknowledged {name}")
            await until_ready(late)
            assert await denials(late, USERS, models) == pairs(sets["A"], models) | pairs(sets["B"], models)


async def test_a_late_agent_answers_ready_only_once_it_holds_the_active_restrictions(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    fable = f"fable-{unique}"
    directive, users = f"DA-{unique}", BitMap(range(0, 40))
    async with TopicReader(bootstrap, ENFORCEMENT) as status:
        async with (
            running(bootstrap, tmp_path / "enforcement") as service,
            real_agent(bootstrap, f"early-{unique}", [fable], tmp_path),
        ):
            await eventually(lambda: f"early-{unique}" in service.core.clusters, what="early agent heartbeat")
            await publish(bootstrap, IMPACT, *impact(directive, {fable: users}))
            await eventually(lambda: enforced(status, directive, "restrict"), what="restricted")

        # Enforcement is busy elsewhere (here: restarting) while the new cluster's agent starts.
        async with real_agent(bootstrap, f"late-{unique}", [fable], tmp_path) as late:
            samples: list[tuple[bool, bool]] = []  # (answers ready, holds the directive)

            async def sample() -> None:
                samples.append((await ready(late), directive in late.holding.state.held))

            for _ in range(60):
                await sample()
                await asyncio.sleep(0.05)
            async with running(bootstrap, tmp_path / "enforcement"):
                deadline = asyncio.get_running_loop().time() + 60
                while not all(samples[-1]):
                    assert asyncio.get_running_loop().time() < deadline, f"never ready and holding: {samples[-3:]}"
                    await sample()
                    await asyncio.sleep(0.05)
            assert await denials(late, USERS, [fable]) == {(u, fable) for u in users}
            premature = [s for s in samples if s == (True, False)]
            assert premature == [], f"ready in {len(premature)} of {len(samples)} samples before holding {directive}"
