"""Benchmark how enforcement grows with the number of serving clusters: directive -> every cluster's agent acked.

`python -m bench.clusters` runs the whole path of bench.enforce at 10M affected users (DirectiveIssued ->
the impact service -> enforcement -> the last agent's CommandApplied with the digest enforcement verified)
twice in one run, each on a fresh broker: with 3 clusters, then with 30. On 2 cores the agents run as three
processes in both phases (devtools.agent_pool: one agent each with 3 clusters, ten each with 30), so only
the number of clusters changes. Writes bench/results/clusters.json.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.enforce import (
    E2E_DISCARDED,
    E2E_REGISTRIES,
    E2E_RUNS,
    ROOT,
    AckWatch,
    Bench,
    directive_runs,
    percentile,
)
from bench.report import publish
from shared.contracts.catalogue import COMMANDS
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

RUN = ROOT / ".run" / "bench-clusters"
KAFKA_DATA = ROOT / ".run" / "bench-kafka-clusters"
PROCESSES = 3  # agent processes in both phases: what fits 2 cores beside the broker, impact and enforcement
PHASES = (3, 30)  # clusters
LABEL = "10M"
READY_TIMEOUT_S = 180.0


class PooledBench(Bench):
    """bench.enforce's Bench with the agents spread over PROCESSES processes of devtools.agent_pool."""

    def start_agents(self, state: Path, signing: bool) -> None:
        for index in range(PROCESSES):
            clusters = self.clusters[index::PROCESSES]
            spec = self.run / f"agents-{index}.json"
            spec.write_text(
                json.dumps(
                    [{**self.stack.base_env(f"agent-{c}"), **self.agent_env(c, state, signing)} for c in clusters]
                )
            )
            spec.chmod(0o600)  # each agent's Kafka password
            env = {**self.stack.base_env(), "COUNTERMAND_LOG_LEVEL": "WARNING"}
            self.stack.spawn(f"agents-{index}", "devtools.agent_pool", env, args=(str(spec),))


def cluster_ids(count: int) -> tuple[str, ...]:
    return tuple(f"bench-c{count}-{i:02d}" for i in range(count))


@dataclass
class Phase:
    """One phase's kept runs: seconds to the last ack; and per run when enforcement had sent the commands and
    when the first and the last cluster's ack was created, after the directive's publication."""

    totals: list[float]
    affected: int
    sent: list[float] = field(default_factory=list)
    first_ack: list[float] = field(default_factory=list)
    last_ack: list[float] = field(default_factory=list)

    def split(self) -> str:
        return (
            f"median split: impact + enforcement -> commands sent {statistics.median(self.sent):.2f} s, first "
            f"cluster acked {statistics.median(self.first_ack):.2f} s, last {statistics.median(self.last_ack):.2f} s"
        )


def observed(watch: AckWatch, published: dict[str, float], totals: list[float], affected: int) -> Phase:
    found = Phase(totals, affected)
    for directive, started in published.items():
        digest = watch.enforced_digest[directive]
        created = [watch.acks[(directive, c, digest)][0] for c in watch.clusters]
        found.sent.append(watch.sent.get(directive, started) - started)
        found.first_ack.append(min(created) - started)
        found.last_ack.append(max(created) - started)
    return found


async def phase(clusters: tuple[str, ...]) -> Phase:
    """On a fresh broker: enforcement, the agents of these clusters and impact; the 10M directive runs."""
    run = RUN / f"{len(clusters)}"
    shutil.rmtree(run, ignore_errors=True)
    with PooledBench(clusters, run, KAFKA_DATA) as bench:
        bootstrap = bench.kafka.bootstrap
        await apply_topics(KafkaSettings(bootstrap=bootstrap))
        state = run / "state"
        async with AckWatch(bootstrap, clusters) as watch:
            producer = kafka.producer(
                KafkaSettings(bootstrap=bootstrap), "bench-impact", linger_ms=2, max_request_size=4 * 1024 * 1024
            )
            await producer.start()
            try:
                bench.start_services(state)
                await watch.until(
                    lambda: all(watch.heartbeats.get(c) for c in clusters),
                    f"{len(clusters)} ready agents",
                    READY_TIMEOUT_S,
                )
                registry_users = E2E_REGISTRIES[LABEL]
                print(f"{len(clusters)} clusters: directive published -> acked, {registry_users:,}-user registry")
                published: dict[str, float] = {}
                totals, affected = await directive_runs(
                    bench, watch, producer, state, registry_users, E2E_RUNS, published=published
                )
                return observed(watch, published, totals, affected)
            finally:
                await producer.stop()


def rows(phases: dict[int, Phase]) -> list[dict[str, Any]]:
    few, many = PHASES
    times = {n: p.totals for n, p in phases.items()}
    p50 = {n: statistics.median(t) for n, t in times.items()}
    affected = phases[many].affected
    how = (
        f"{E2E_RUNS} runs after {E2E_DISCARDED} discarded, mission directive (2 models), {affected:,} users "
        f"affected: DirectiveIssued -> impact (a process) -> enforcement -> the last cluster's CommandApplied with "
        f"the digest enforcement verified (its create time); the agents in {PROCESSES} processes of "
        f"devtools.agent_pool, one event loop each; {COMMANDS.name} has {COMMANDS.partitions} partitions, so "
        f"each agent also fetches the commands of the clusters sharing its partition"
    )
    return [
        {
            "metric": f"enforce_p50_s_{LABEL}_{few}clusters",
            "value": round(p50[few], 4),
            "unit": "s",
            "target": "",
            "note": f"{few} clusters, one agent per process; {how}; p95 {percentile(times[few], 95):.3f} s; "
            f"{phases[few].split()}",
        },
        {
            "metric": f"enforce_p50_s_{LABEL}_{many}clusters",
            "value": round(p50[many], 4),
            "unit": "s",
            "target": "<= 1.0",
            "note": f"{many} clusters, {many // PROCESSES} agents per process; {how}; "
            f"p95 {percentile(times[many], 95):.3f} s; {phases[many].split()}",
        },
        {
            "metric": "cluster_growth_ratio",
            "value": round(p50[many] / p50[few], 3),
            "unit": "x",
            "target": "<= 1.5",
            "note": f"enforce_p50_s_{LABEL}_{many}clusters / enforce_p50_s_{LABEL}_{few}clusters measured in this "
            f"run: {p50[many]:.3f} s / {p50[few]:.3f} s",
        },
    ]


async def measure() -> list[dict[str, Any]]:
    return rows({count: await phase(cluster_ids(count)) for count in PHASES})


def main() -> None:
    results = asyncio.run(measure())
    publish("clusters", results, "directive -> all clusters acked at 10M: 3 clusters against 30 (real Kafka)")


if __name__ == "__main__":
    main()
