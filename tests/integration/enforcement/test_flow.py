"""Enforcement on the real broker with fake agents: targeting, acks, verdicts, lift, overdue and re-sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyroaring import BitMap

from devtools.waiting import eventually
from shared.contracts.bitmaps import scope_digest
from shared.contracts.catalogue import COMMANDS, ENFORCEMENT, IMPACT
from tests.integration.enforcement.conftest import FakeAgent, TopicReader, impact, publish, running


async def test_restriction_reaches_only_serving_clusters_and_is_enforced_once_all_acknowledge(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, fable, mythos, other = f"D-{unique}", f"fable-{unique}", f"mythos-{unique}", f"other-{unique}"
    sets = {fable: BitMap(range(100)), mythos: BitMap(range(50, 70))}
    assessed, *chunks = impact(directive, sets)
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        TopicReader(bootstrap, COMMANDS) as sent,
        FakeAgent(bootstrap, f"a-{unique}", [fable]) as a,
        FakeAgent(bootstrap, f"b-{unique}", [fable, mythos, other]) as b,
        FakeAgent(bootstrap, f"c-{unique}", [other]) as c,
        running(bootstrap, tmp_path) as service,
    ):
        await eventually(lambda: {a.cluster, b.cluster, c.cluster} <= set(service.core.clusters), what="heartbeats")
        await publish(bootstrap, IMPACT, assessed, *chunks)

        [enforced] = await eventually(
            lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="DirectiveEnforced"
        )
        assert enforced.digest == assessed.digest and enforced.action == "restrict"
        assert set(enforced.clusters) == {a.cluster, b.cluster} == set(enforced.ack_latency_s)
        assert {p.state for p in enforced.clusters.values()} == {"applied"}
        restricts = sent.where(type="RestrictCommand", directive_id=directive)
        assert {r.cluster_id for r in restricts} == {a.cluster, b.cluster} and c.commands() == []
        assert {ref.model for r in restricts if r.cluster_id == a.cluster for ref in r.sets} == {fable}
        assert {r.expected_digest for r in restricts if r.cluster_id == a.cluster} == {a.digest_of(directive)}
        assert {r.expected_digest for r in restricts if r.cluster_id == b.cluster} == {assessed.digest}
        assert status.where(type="EnforcementProgressed", directive_id=directive)

        lift, *lift_chunks = impact(directive, sets, action="lift")
        await publish(bootstrap, IMPACT, lift, *lift_chunks)
        [lifted] = await eventually(
            lambda: status.where(type="DirectiveEnforced", directive_id=directive, action="lift"), what="lift enforced"
        )
        assert lifted.digest == scope_digest({}) and set(lifted.clusters) == {a.cluster, b.cluster}
        await asyncio.sleep(1.5)  # let any duplicate verdict surface before counting
        assert len(status.where(type="DirectiveEnforced", directive_id=directive, action="restrict")) == 1

    async with running(bootstrap, tmp_path) as restarted:  # state is rebuilt from SQLite
        rollout = restarted.core.rollouts[(directive, 1, "restrict")]
        assert rollout.enforced and not rollout.active
        assert {t.state for t in rollout.clusters.values()} == {"applied"}
        assert (directive, 1, "restrict") not in restarted.core.sets  # lifted: its sets were dropped


async def test_silent_cluster_is_overdue_and_re_sent_to_wrong_digest_is_re_sent_until_right(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, fable = f"D-{unique}", f"fable-{unique}"
    assessed, *chunks = impact(directive, {fable: BitMap(range(0, 1000, 3))}, deadline_s=2)
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        FakeAgent(bootstrap, f"good-{unique}", [fable]) as good,
        FakeAgent(bootstrap, f"silent-{unique}", [fable], mode="silent") as silent,
        FakeAgent(bootstrap, f"wrong-{unique}", [fable], mode="wrong_once") as wrong,
        running(bootstrap, tmp_path) as service,
    ):
        clusters = {good.cluster, silent.cluster, wrong.cluster}
        await eventually(lambda: clusters <= set(service.core.clusters), what="heartbeats")
        await publish(bootstrap, IMPACT, assessed, *chunks)

        await eventually(
            lambda: [
                e
                for e in status.where(type="EnforcementOverdue", directive_id=directive)
                if silent.cluster in e.overdue_clusters
            ],
            what="overdue event",
        )
        await eventually(
            lambda: len({c.event_id.rsplit(":", 1)[1] for c in silent.commands()}) >= 3,
            what="re-sends to the silent cluster",
        )

        def progress(cluster: str) -> list:
            return [
                p.clusters[cluster]
                for p in status.where(type="EnforcementProgressed", directive_id=directive)
                if cluster in p.clusters
            ]

        await eventually(
            lambda: [p for p in progress(wrong.cluster) if p.reason == "digest mismatch"], what="digest mismatch"
        )
        await eventually(lambda: [p for p in progress(wrong.cluster) if p.state == "applied"], what="wrong applied")
        assert wrong.answers >= 2 and len({c.event_id.rsplit(":", 1)[1] for c in wrong.commands()}) >= 2
        assert status.where(type="DirectiveEnforced", directive_id=directive) == []

        silent.mode = "faithful"  # the next re-send is answered: a late ack
        [enforced] = await eventually(
            lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced after late ack"
        )
        assert set(enforced.clusters) == clusters and enforced.digest == assessed.digest
        assert enforced.clusters[silent.cluster].attempts >= 3


async def test_a_cluster_heard_of_after_the_restriction_receives_it(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, fable = f"D-{unique}", f"fable-{unique}"
    assessed, *chunks = impact(directive, {fable: BitMap([5, 6, 7])})
    async with TopicReader(bootstrap, ENFORCEMENT) as status, running(bootstrap, tmp_path) as service:
        await publish(bootstrap, IMPACT, assessed, *chunks)
        await eventually(lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="no clusters")
        async with FakeAgent(bootstrap, f"late-{unique}", [fable]) as late:
            await eventually(
                lambda: [
                    p
                    for p in status.where(type="EnforcementProgressed", directive_id=directive)
                    if p.clusters.get(late.cluster) and p.clusters[late.cluster].state == "applied"
                ],
                what="late joiner applied",
            )
            assert late.digest_of(directive) == assessed.digest
        assert service.core.rollouts[(directive, 1, "restrict")].clusters[late.cluster].applied
