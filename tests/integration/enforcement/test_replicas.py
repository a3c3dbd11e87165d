"""Agent replicas on the real broker: two replica processes of one cluster and one other cluster's agent, with
enforcement in-process. A directive is enforced only once both replicas acknowledged it; a replica killed with
SIGKILL stops counting once its heartbeats lapse, and catches up and acknowledges when it comes back; acks from
an unknown replica or with a digest that does not match count nothing."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pyroaring import BitMap

from devtools.waiting import eventually
from shared.contracts.bitmaps import scope_digest, set_digest
from shared.contracts.catalogue import ACKS, COMMANDS, ENFORCEMENT, IMPACT, dead_letter_topic
from shared.contracts.serving import AgentHeartbeat, CommandApplied
from tests.integration.agent.conftest import AgentProcess
from tests.integration.enforcement.conftest import WRONG, TopicReader, impact, publish, running

USERS = BitMap(range(0, 60, 3))
LAPSE_S = 6.0  # enforcement's replica lapse bound in these tests (agents beat every 0.5 s)


class RecordingLog:
    """Stands in for the service's logger: keeps every warning (the core's notes), forwards everything."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.warnings = inner, []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append(event)
        self.inner.warning(event, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def agents(bootstrap: str, tmp_path: Path, model: str, *specs: tuple[str, str]):
    """Agent processes, one per (cluster, replica id or ''), each with its own state dir; stopped at the end."""
    started = {}
    for cluster, replica in specs:
        folder = tmp_path / f"{cluster}-{replica or 'single'}"
        folder.mkdir()
        extra = {"replica_id": replica} if replica else {}
        process = AgentProcess(bootstrap, cluster, folder / "state", folder, models=model, stale_after_s=3, **extra)
        process.start()
        started[(cluster, replica)] = process
    try:
        yield started
    finally:
        for process in started.values():
            process.stop()


async def answers_ready(process: AgentProcess) -> bool:
    try:
        async with httpx.AsyncClient(base_url=process.base_url, timeout=5.0) as client:
            return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def denied(process: AgentProcess, model: str) -> set[int]:
    checks = [{"user": u, "model": model} for u in range(60)]
    async with httpx.AsyncClient(base_url=process.base_url, timeout=10.0) as client:
        response = await client.post("/v1/access:batch", json={"checks": checks})
    assert response.status_code == 200, response.text
    return {r["user"] for r in response.json()["results"] if r["decision"] == "deny"}


def progress(status: TopicReader, directive: str, cluster: str) -> list:
    return [p.clusters[cluster] for p in status.where(type="EnforcementProgressed", directive_id=directive)]


async def all_ready(service, processes: dict, x: str, y: str) -> None:
    await eventually(
        lambda: service.core.clusters.get(x) and service.core.clusters[x].replicas == ["r0", "r1"],
        what="heartbeats of both replicas",
    )
    await eventually(lambda: y in service.core.clusters, what="heartbeat of the other cluster")
    for process in processes.values():
        await eventually(lambda p=process: answers_ready(p), what=f"agent on {process.base_url} ready")


async def test_a_directive_is_enforced_only_after_both_replicas_of_a_cluster_acknowledge(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    x, y, model, directive = f"x-{unique}", f"y-{unique}", f"fable-{unique}", f"D-{unique}"
    digest = scope_digest({model: set_digest(USERS)})
    with agents(bootstrap, tmp_path, model, (x, "r0"), (x, "r1"), (y, "")) as processes:
        async with (
            TopicReader(bootstrap, ENFORCEMENT) as status,
            TopicReader(bootstrap, ACKS) as acks,
            running(bootstrap, tmp_path / "enforcement", replica_lapse_s=60) as service,
        ):
            await all_ready(service, processes, x, y)
            await publish(bootstrap, IMPACT, *impact(directive, {model: USERS}))

            [enforced] = await eventually(
                lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced"
            )
            assert enforced.clusters[x].replicas == {"r0": digest, "r1": digest}
            assert set(enforced.clusters) == {x, y} and enforced.clusters[y].state == "applied"
            # Before the verdict the cluster waited, applied by neither replica's ack alone.
            halfway = [p for p in progress(status, directive, x) if len(p.replicas) == 1 and p.state == "pending"]
            assert halfway and halfway[0].reason.startswith("awaiting replicas: ")
            from_replicas = {
                m.replica_id
                for m in acks.where(type="CommandApplied", directive_id=directive, cluster_id=x, digest=digest)
            }
            assert from_replicas == {"r0", "r1"}
        for process in processes.values():
            assert await denied(process, model) == set(USERS)


async def test_a_replica_joining_after_the_verdict_is_sent_what_the_cluster_holds_and_counts_once_it_acks(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    x, y, model, directive = f"x-{unique}", f"y-{unique}", f"fable-{unique}", f"D-{unique}"
    digest = scope_digest({model: set_digest(USERS)})
    with agents(bootstrap, tmp_path, model, (x, "r0"), (y, "")) as processes:
        async with (
            TopicReader(bootstrap, ENFORCEMENT) as status,
            TopicReader(bootstrap, ACKS) as acks,
            TopicReader(bootstrap, COMMANDS) as commands,
            running(bootstrap, tmp_path / "enforcement", replica_lapse_s=60) as service,
        ):
            await eventually(lambda: x in service.core.clusters and y in service.core.clusters, what="heartbeats")
            for process in processes.values():
                await eventually(lambda p=process: answers_ready(p), what="agents ready")
            await publish(bootstrap, IMPACT, *impact(directive, {model: USERS}))
            await eventually(lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced")
            track = service.core.rollouts[(directive, 1, "restrict")].clusters[x]

            with agents(bootstrap, tmp_path, model, (x, "r1")) as late:
                r1 = late[(x, "r1")]
                await eventually(lambda: answers_ready(r1), what="the late replica ready")
                assert await denied(r1, model) == set(USERS)
                await eventually(lambda: "r1" in track.replicas, what="the late replica counted")
                assert track.replicas["r1"].digest == digest and track.applied
                # It was synced by a marker answering one of its own not-ready heartbeats.
                asked = {b.event_id for b in acks.where(type="AgentHeartbeat", replica_id="r1", ready=False)}
                markers = commands.where(type="ClusterSynced", cluster_id=x)
                assert asked & {m.heartbeat_event_id for m in markers}
            assert len(status.where(type="DirectiveEnforced", directive_id=directive)) == 1
            assert all(p.state == "applied" for p in progress(status, directive, x)[-2:])


async def test_a_replica_killed_mid_rollout_stops_counting_once_its_heartbeats_lapse_and_catches_up_on_restart(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    x, y, model, directive = f"x-{unique}", f"y-{unique}", f"fable-{unique}", f"D-{unique}"
    digest = scope_digest({model: set_digest(USERS)})
    with agents(bootstrap, tmp_path, model, (x, "r0"), (x, "r1"), (y, "")) as processes:
        async with (
            TopicReader(bootstrap, ENFORCEMENT) as status,
            TopicReader(bootstrap, ACKS) as acks,
            running(bootstrap, tmp_path / "enforcement", replica_lapse_s=LAPSE_S) as service,
        ):
            await all_ready(service, processes, x, y)
            r1 = processes[(x, "r1")]
            assert r1.kill() == -9  # as the rollout starts: still live for enforcement, it never acknowledges
            await publish(bootstrap, IMPACT, *impact(directive, {model: USERS}))

            [enforced] = await eventually(
                lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced without r1"
            )
            assert enforced.clusters[x].replicas == {"r0": digest}
            # The verdict came once r1's heartbeats lapsed: a lapse bound after its last one (taken in no earlier).
            last_beat = acks.where(type="AgentHeartbeat", cluster_id=x, replica_id="r1")[-1]
            assert enforced.occurred_at >= last_beat.occurred_at + timedelta(seconds=LAPSE_S)
            assert service.core.clusters[x].replicas == ["r0"]

            r1.start()  # same state dir and port: it reads the commands it missed from its own offsets
            await eventually(
                lambda: acks.where(
                    type="CommandApplied", directive_id=directive, cluster_id=x, replica_id="r1", digest=digest
                ),
                what="the restarted replica's ack",
            )
            track = service.core.rollouts[(directive, 1, "restrict")].clusters[x]
            await eventually(
                lambda: track.replicas.get("r1") and track.replicas["r1"].digest == digest, what="r1 counted again"
            )
            assert track.applied and service.core.clusters[x].replicas == ["r0", "r1"]
            await eventually(lambda: answers_ready(r1), what="restarted replica ready")
            assert await denied(r1, model) == set(USERS)
            assert len(status.where(type="DirectiveEnforced", directive_id=directive)) == 1


async def test_an_ack_with_a_malformed_replica_id_is_dead_lettered_naming_the_field(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    x = f"x-{unique}"
    bad = AgentHeartbeat(producer="agent", cluster_id=x, models=["fable-5"], ready=True).model_dump(mode="json")
    raw = json.dumps({**bad, "replica_id": "Not A Replica"}).encode()
    async with (
        TopicReader(bootstrap, dead_letter_topic("enforcement")) as dlq,
        running(bootstrap, tmp_path / "enforcement") as service,
    ):
        good = AgentHeartbeat(producer="agent", cluster_id=x, replica_id="r0", models=["fable-5"], ready=True)
        await publish(bootstrap, ACKS, good, raw=raw, raw_key=x.encode())
        [letter] = await eventually(
            lambda: [d for d in dlq.messages if d.value_b64 == base64.b64encode(raw).decode()], what="dead letter"
        )
        assert letter.reason.startswith("invalid message") and "replica_id" in letter.reason
        await eventually(lambda: x in service.core.clusters, what="the next heartbeat taken in")
        assert service.core.clusters[x].replicas == ["r0"]


async def test_acks_from_an_unknown_replica_or_with_a_wrong_digest_count_nothing(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    x, model, directive = f"x-{unique}", f"fable-{unique}", f"D-{unique}"
    digest = scope_digest({model: set_digest(USERS)})

    def ack(replica: str, held: str) -> CommandApplied:
        return CommandApplied(
            producer="agent",
            cluster_id=x,
            replica_id=replica,
            directive_id=directive,
            revision=1,
            action="restrict",
            digest=held,
        )

    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        running(bootstrap, tmp_path / "enforcement", replica_lapse_s=600) as service,
    ):
        service.log = RecordingLog(service.log)
        beat = AgentHeartbeat(producer="agent", cluster_id=x, replica_id="r0", models=[model], ready=True)
        await publish(bootstrap, ACKS, beat)
        await eventually(lambda: x in service.core.clusters, what="heartbeat")
        await publish(bootstrap, IMPACT, *impact(directive, {model: USERS}))
        track = await eventually(
            lambda: (
                (directive, 1, "restrict") in service.core.rollouts
                and service.core.rollouts[(directive, 1, "restrict")].clusters.get(x)
            ),
            what="rollout",
        )

        await publish(bootstrap, ACKS, ack("ghost", digest))
        [refused] = await eventually(
            lambda: [w for w in service.log.warnings if "unknown replica 'ghost'" in w], what="ghost refused"
        )
        assert "counts nothing" in refused
        assert not track.applied and track.replicas == {}

        await publish(bootstrap, ACKS, ack("r0", WRONG))
        [mismatch] = await eventually(
            lambda: [w for w in service.log.warnings if f"holds digest {WRONG}" in w], what="wrong digest named"
        )
        assert f"expected {digest}: not counted" in mismatch
        assert not track.applied and track.reason == "digest mismatch"

        await publish(bootstrap, ACKS, ack("r0", digest))
        await eventually(lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced")
        assert track.applied and track.replicas["r0"].digest == digest
