"""Benchmark enforcement on a three-node Kafka cluster, and its recovery from broker faults.

`python -m bench.faults` starts a three-node KRaft cluster (devtools.LocalCluster: replication 3,
min.insync.replicas 2, data under .run/bench-kafka-faults), then impact, enforcement and three agents as
subprocesses, as bench.enforce does on one broker. It measures the whole path (DirectiveIssued -> impact ->
enforcement -> the last of 3 agents' digest-checked ack) at 1M affected users, then per fault scenario one
directive during which the fault is injected right after the directive is published:

- broker_kill: SIGKILL of a broker that is not the active controller;
- controller_kill: SIGKILL of the active controller (the KRaft quorum leader);
- broker_pause: SIGSTOP of a broker past its session timeout (9 s), SIGCONT after 12 s.

Per scenario: `<scenario>_recovery_s` (fault -> every cluster acked the digest enforcement verified),
`<scenario>_lost` (agents whose heartbeats after recovery hold nothing for the directive: an acknowledged write
lost shows here) and `<scenario>_wrong_answers` (agents whose latest heartbeat holds another digest than the one
enforcement verified: an agent answering checks for a different set). Notices are not in this bench (no
notifier runs), so `<scenario>_duplicate_notices` is not reported. The faulted node is brought back after
each scenario.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.enforce import (
    CLUSTERS,
    E2E_REGISTRIES,
    E2E_RUNS,
    ROOT,
    AckWatch,
    Bench,
    directive_runs,
    percentile,
    signed,
    start_impact,
)
from bench.report import publish
from devtools.broker import LocalCluster
from devtools.stack import Stack
from shared.contracts.catalogue import ACKS, DIRECTIVES, key_of
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

RUN = ROOT / ".run" / "bench-faults"
KAFKA_DATA = ROOT / ".run" / "bench-kafka-faults"
REGISTRY = E2E_REGISTRIES["1M"]
PAUSE_S = 12.0  # past broker.session.timeout.ms (9 s): the controller fences the paused broker
SCENARIO_TIMEOUT_S = 180.0
HEARTBEATS_S = 4.0  # the agents beat every second here


class ClusterBench(Bench):
    """bench.enforce's Bench on a three-node cluster instead of one broker."""

    def __init__(self) -> None:
        self.kafka = LocalCluster(KAFKA_DATA, 3, agents=CLUSTERS)
        self.stack = Stack(self.kafka.bootstrap, RUN, clusters=(), extra_env={"COUNTERMAND_LOG_LEVEL": "WARNING"})


async def fault_run(
    bench: ClusterBench, watch: AckWatch, producer: Any, name: str, inject: Callable[[], None], heal: Callable[[], None]
) -> list[dict[str, Any]]:
    """One directive with the fault injected right after it is published; the three figures of the scenario."""
    from bench.impact import MISSION, directive

    issued = directive(f"FAULT-{name}-{uuid.uuid4().hex[:6]}", MISSION)
    value, key = issued.model_dump_json().encode(), key_of(DIRECTIVES, issued)
    await producer.send_and_wait(DIRECTIVES.name, value, key=key, headers=signed("intake", DIRECTIVES.name, key, value))
    faulted = time.time()
    await asyncio.to_thread(inject)
    recovery, digest = float("nan"), ""
    try:
        digest = await watch.until(
            lambda: watch.enforced_digest.get(issued.directive_id), f"{name}: enforced", SCENARIO_TIMEOUT_S
        )
        done, _ = await watch.until(
            lambda: watch.all_acked(issued.directive_id, digest), f"{name}: acks", SCENARIO_TIMEOUT_S
        )
        recovery = max(0.0, done - faulted)
    except TimeoutError as exc:
        print(f"  {name}: {exc}", flush=True)
    finally:
        await asyncio.to_thread(heal)
    await asyncio.sleep(HEARTBEATS_S)  # the agents' next heartbeats say what each holds now
    held = await held_digests(bench.kafka.bootstrap, issued.directive_id, since=faulted)
    lost = sum(1 for c in CLUSTERS if c not in held)
    wrong = sum(1 for c in CLUSTERS if c in held and held[c] != digest)
    print(f"  {name}: recovered in {recovery:.2f} s, lost {lost}, wrong answers {wrong}", flush=True)
    return [
        {
            "metric": f"{name}_recovery_s",
            "value": round(recovery, 2),
            "unit": "s",
            "target": "<= 30",
            "note": "fault (right after DirectiveIssued) -> the last of 3 agents acked the digest enforcement verified",
        },
        {
            "metric": f"{name}_lost",
            "value": lost,
            "unit": "clusters",
            "target": "<= 0",
            "note": f"agents whose heartbeats {HEARTBEATS_S:.0f} s after recovery hold nothing for the directive",
        },
        {
            "metric": f"{name}_wrong_answers",
            "value": wrong,
            "unit": "clusters",
            "target": "<= 0",
            "note": "agents whose latest heartbeat holds another digest than the one enforcement verified "
            "against the assessment (an agent answering checks for a different set)",
        },
    ]


async def held_digests(bootstrap: str, directive_id: str, *, since: float) -> dict[str, str]:
    """Cluster -> the digest its latest heartbeat (produced after `since`) holds for the directive."""
    held: dict[str, tuple[int, str]] = {}
    async for record in kafka.records_to_end(KafkaSettings(bootstrap=bootstrap), ACKS, "bench-faults-held"):
        if record.timestamp < since * 1000:
            continue
        message = ACKS.adapter.validate_json(record.value)
        if message.type == "AgentHeartbeat" and directive_id in message.held:
            if record.timestamp >= held.get(message.cluster_id, (0, ""))[0]:
                held[message.cluster_id] = (record.timestamp, message.held[directive_id].digest)
    return {cluster: digest for cluster, (_, digest) in held.items()}


async def measure(bench: ClusterBench) -> list[dict[str, Any]]:
    bootstrap = bench.kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap), replication=3, min_insync_replicas=2)
    state = RUN / "state"
    shutil.rmtree(state, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    async with AckWatch(bootstrap) as watch:
        bench.start_services(state)
        await watch.until(lambda: all(watch.heartbeats.get(c) for c in CLUSTERS), "three ready agents", 120)
        producer = kafka.producer(KafkaSettings(bootstrap=bootstrap), "bench-faults", linger_ms=2)
        await producer.start()
        try:
            print(f"three brokers: directive published -> acked, {REGISTRY:,}-user registry", flush=True)
            totals, affected = await directive_runs(bench, watch, producer, state, REGISTRY, E2E_RUNS)
            rows.append(
                {
                    "metric": "enforce_p50_s_1M_3brokers",
                    "value": round(statistics.median(totals), 4),
                    "unit": "s",
                    "target": "<= 0.8",
                    "note": f"as enforce_p50_s_1M ({affected:,} users affected) on a three-node KRaft cluster, "
                    f"topics with replication 3 and min.insync.replicas 2, producers acks=all; "
                    f"p95 {percentile(totals, 95):.3f} s",
                }
            )
            rows += await scenarios(bench, watch, producer, state)
        finally:
            await producer.stop()
    return rows


async def scenarios(bench: ClusterBench, watch: AckWatch, producer: Any, state: Path) -> list[dict[str, Any]]:
    cluster = bench.kafka
    await start_impact(bench, state)
    rows: list[dict[str, Any]] = []
    leader = cluster.active_controller()
    follower = next(n for n in range(1, cluster.nodes + 1) if n != leader)
    rows += await fault_run(
        bench, watch, producer, "broker_kill", lambda: cluster.kill(follower), lambda: cluster.restart(follower)
    )
    leader = cluster.active_controller()
    rows += await fault_run(
        bench, watch, producer, "controller_kill", lambda: cluster.kill(leader), lambda: cluster.restart(leader)
    )
    paused = next(n for n in range(1, cluster.nodes + 1) if n != cluster.active_controller())
    paused_at: list[float] = []

    def pause() -> None:
        paused_at.append(time.time())
        cluster.freeze(paused)

    def resume() -> None:  # not before the session timeout has fenced it, however fast the rest recovered
        time.sleep(max(0.0, paused_at[0] + PAUSE_S - time.time()))
        cluster.thaw(paused)

    rows += await fault_run(bench, watch, producer, "broker_pause", pause, resume)
    bench.stack.stop_one("impact")
    return rows


def main() -> None:
    with ClusterBench() as bench:
        rows = asyncio.run(measure(bench))
    publish("faults", rows, "enforcement on a three-node Kafka cluster, and recovery from broker faults")


if __name__ == "__main__":
    main()
