"""Benchmark enforcement and notices on a three-node Kafka cluster, and their recovery from broker and service faults.

`python -m bench.faults` starts a three-node KRaft cluster (devtools.LocalCluster: replication 3,
min.insync.replicas 2, data under .run/bench-kafka-faults), aiosmtpd on loopback (devtools.Mailbox), impact,
enforcement and three agents as processes, and measures the whole path (DirectiveIssued -> impact -> enforcement
-> the last of 3 agents' digest-checked ack) at 1M affected users. Then intake, the notifier (real SMTP, joining
from the topics' ends) and the audit start, and per fault scenario one directive is published (NOTICE_SCOPE:
964 users of the same registry, each with a registry record, each told) with the fault injected right
after it:

- broker_kill: SIGKILL of a broker that is not the active controller (restarted once recovered);
- controller_kill: SIGKILL of the active controller (the KRaft quorum leader; restarted once recovered);
- broker_pause: SIGSTOP of a broker past its session timeout (9 s), SIGCONT after 12 s;
- <service>_kill for intake, impact, enforcement, notifier, audit and agent (one of the three): SIGKILL of the
  service's process, restarted at once on the same state folder, as an orchestrator would.

Per scenario: `<scenario>_recovery_s` (fault -> every cluster acked the digest enforcement verified, every
recipient's notice is at the SMTP server, and a killed service answers /readyz again), `<scenario>_lost` (agents
whose heartbeats after recovery hold nothing for the directive, plus recipients with no notice for it: the note
gives each), `<scenario>_duplicate_notices` (recipients the SMTP server received more than one message of the
directive for, raw copies: nothing deduplicated) and `<scenario>_wrong_answers` (agents whose latest heartbeat
holds another digest than the one enforcement verified). `--scenarios a,b` runs only those, `--runs 0` skips the
timed path.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pyroaring import BitMap

from bench.enforce import (
    CLUSTERS,
    E2E_REGISTRIES,
    E2E_RUNS,
    MODELS,
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
from devtools.mailbox import Mailbox
from devtools.messages import user_upserted
from devtools.observe import group_starts_at, topics_end
from devtools.ports import free_port
from devtools.stack import Cluster, Stack
from services.notifier.settings import NotifierSettings
from shared.contracts.catalogue import ACKS, DIRECTIVES, ENFORCEMENT, IMPACT, USERS, key_of
from shared.contracts.directives import DirectiveScope
from shared.contracts.users import user_key
from shared.runtime import kafka
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

RUN = ROOT / ".run" / "bench-faults"
KAFKA_DATA = ROOT / ".run" / "bench-kafka-faults"
REGISTRY = E2E_REGISTRIES["1M"]
# What each fault directive covers: the consumers of one nationality entitled to mythos-5 who are no US nationals,
# 964 of the registry, every one with a registry record, so each is told. (The notifier sends a few hundred
# notices a second on this machine: the mission directive's 1M would take most of an hour per scenario.)
NOTICE_SCOPE = DirectiveScope(
    models=list(MODELS),
    unknown_attribute="allow",
    selector={
        "kind": "all_of",
        "of": [
            {"kind": "foreign_national", "home_country": "US"},
            {"kind": "account_type", "any_of": ["consumer"]},
            {"kind": "nationality", "any_of": ["IR"]},
            {"kind": "entitlement", "any_of": ["mythos-5"]},
        ],
    },
)
PAUSE_S = 12.0  # past broker.session.timeout.ms (9 s): the controller fences the paused broker
SCENARIO_TIMEOUT_S = 180.0
HEARTBEATS_S = 4.0  # the agents beat every second here
SETTLE_S = 2.0  # a copy of a notice still on its way shows up within this
BROKER_SCENARIOS = ("broker_kill", "controller_kill", "broker_pause")
KILLED_SERVICES = ("intake", "impact", "enforcement", "notifier", "audit", "agent")
SCENARIOS = BROKER_SCENARIOS + tuple(f"{s}_kill" for s in KILLED_SERVICES)
KILLED_AGENT = CLUSTERS[0]
TARGET_S = {"broker": 30, "service": 15}


class ClusterBench(Bench):
    """bench.enforce's Bench on a three-node cluster instead of one broker, with every service and an SMTP server."""

    def __init__(self) -> None:
        self.clusters, self.run = CLUSTERS, RUN
        self.kafka = LocalCluster(KAFKA_DATA, 3, agents=CLUSTERS)
        serving = tuple(Cluster(c, c, MODELS) for c in CLUSTERS)  # whose acks the audit checks
        self.stack = Stack(self.kafka.bootstrap, RUN, clusters=serving, extra_env={"COUNTERMAND_LOG_LEVEL": "WARNING"})
        self.stack.mailbox = Mailbox(RUN / "mailbox.jsonl")
        self.recipients = 0  # users each fault directive covers, every one with a registry record

    def __enter__(self) -> ClusterBench:
        shutil.rmtree(RUN / "state", ignore_errors=True)
        (RUN / "mailbox.jsonl").unlink(missing_ok=True)
        super().__enter__()
        assert self.stack.mailbox is not None
        self.stack.mailbox.start()
        return self

    @property
    def mailbox(self) -> Mailbox:
        assert self.stack.mailbox is not None
        return self.stack.mailbox

    def spawn(self, name: str, module: str, env: dict[str, str], principal: str) -> Path:
        """As Bench.spawn, on a free HTTP port (each process's /readyz tells when it is back)."""
        return self.launch(name, module, {**self.stack.base_env(principal), **env}).log

    def launch(self, name: str, module: str, env: dict[str, str]) -> Any:
        return self.stack.spawn(name, module, {**env, f"COUNTERMAND_{module.upper()}_HTTP_PORT": str(free_port())})

    def start_others(self) -> None:
        """Intake, the notifier (to the SMTP server) and the audit, as the stack starts them."""
        for name in ("intake", "notifier", "audit"):
            self.launch(name, name, self.stack.service_env(name))

    async def until_ready(self, name: str, timeout: float = SCENARIO_TIMEOUT_S) -> float:
        """When the process answered /readyz with 200."""
        deadline = time.time() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.time() < deadline:
                self.stack.check_alive()
                try:
                    if (await client.get(f"{self.stack.processes[name].url}/readyz")).status_code == 200:
                        return time.time()
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{name} not ready again after {timeout:.0f} s")


@dataclass
class Notices:
    """What the SMTP server received for one directive: raw messages, nothing deduplicated."""

    arrived: dict[str, float]  # recipient -> when their first message came
    copies: Counter[str]  # recipient -> messages received

    @classmethod
    def of(cls, box: Mailbox, directive_id: str) -> Notices:
        mine = [m for m in list(box.received) if m.notice.startswith(f"{directive_id}:")]
        arrived: dict[str, float] = {}
        for message in mine:
            arrived[message.to] = min(message.at, arrived.get(message.to, message.at))
        return cls(arrived, Counter(m.to for m in mine))

    @property
    def duplicated(self) -> int:
        return sum(1 for n in self.copies.values() if n > 1)


async def until_notified(bench: ClusterBench, directive_id: str, timeout: float = SCENARIO_TIMEOUT_S) -> float:
    """When the last of the recipients' first notice of the directive reached the SMTP server."""
    deadline = time.time() + timeout
    while len((notices := Notices.of(bench.mailbox, directive_id)).arrived) < bench.recipients:
        bench.stack.check_alive()
        if time.time() > deadline:
            raise TimeoutError(f"{len(notices.arrived)} of {bench.recipients} notices of {directive_id} arrived")
        await asyncio.sleep(0.5)
    return max(notices.arrived.values())


@dataclass
class Fault:
    name: str
    inject: Callable[[], None]
    heal: Callable[[], None] = lambda: None
    restarted: str | None = None  # the process killed and restarted: its readiness ends the recovery

    @property
    def kind(self) -> str:
        return "service" if self.restarted else "broker"


async def fault_run(bench: ClusterBench, watch: AckWatch, producer: Any, fault: Fault) -> list[dict[str, Any]]:
    """One directive with the fault injected right after it is published; the four figures of the scenario."""
    from bench.impact import directive

    name = fault.name
    issued = directive(f"FAULT-{name}-{uuid.uuid4().hex[:6]}", NOTICE_SCOPE)
    value, key = issued.model_dump_json().encode(), key_of(DIRECTIVES, issued)
    await producer.send_and_wait(DIRECTIVES.name, value, key=key, headers=signed("intake", DIRECTIVES.name, key, value))
    faulted = time.time()
    await asyncio.to_thread(fault.inject)
    recovery, digest, stages = float("nan"), "", ""
    try:
        ready = await bench.until_ready(fault.restarted) if fault.restarted else faulted
        digest = await watch.until(
            lambda: watch.enforced_digest.get(issued.directive_id), f"{name}: enforced", SCENARIO_TIMEOUT_S
        )
        acked, _ = await watch.until(
            lambda: watch.all_acked(issued.directive_id, digest), f"{name}: acks", SCENARIO_TIMEOUT_S
        )
        notified = await until_notified(bench, issued.directive_id)
        recovery = max(0.0, max(ready, acked, notified) - faulted)
        stages = f"; acked at {acked - faulted:.1f} s, last notice at {notified - faulted:.1f} s" + (
            f", {fault.restarted} ready at {ready - faulted:.1f} s" if fault.restarted else ""
        )
    except (TimeoutError, RuntimeError) as exc:
        print(f"  {name}: {exc}", flush=True)
    finally:
        await asyncio.to_thread(fault.heal)
    await asyncio.sleep(max(HEARTBEATS_S, SETTLE_S))  # the agents' next heartbeats say what each holds now
    held = await held_digests(bench.kafka.bootstrap, issued.directive_id, since=faulted)
    lost_agents = sum(1 for c in CLUSTERS if c not in held)
    wrong = sum(1 for c in CLUSTERS if c in held and held[c] != digest)
    notices = Notices.of(bench.mailbox, issued.directive_id)
    missing = bench.recipients - len(notices.arrived)
    extra = sum(notices.copies.values()) - len(notices.copies)
    print(
        f"  {name}: recovered in {recovery:.2f} s, lost {lost_agents} agents + {missing} notices, "
        f"duplicate notices {notices.duplicated} ({extra} extra copies), wrong answers {wrong}",
        flush=True,
    )
    target = TARGET_S[fault.kind]
    ends = "every cluster acked, every notice arrived" + (f", {fault.restarted} ready" if fault.restarted else "")
    return [
        {
            "metric": f"{name}_recovery_s",
            "value": round(recovery, 2),
            "unit": "s",
            "target": f"<= {target}",
            "note": f"fault (right after DirectiveIssued) -> {ends} (3 agents acked the digest enforcement verified, "
            f"{bench.recipients:,} recipients' notices at the SMTP server){stages}",
        },
        {
            "metric": f"{name}_lost",
            "value": lost_agents + missing,
            "unit": "events",
            "target": "<= 0",
            "note": f"{lost_agents} agents whose heartbeats {HEARTBEATS_S:.0f} s after recovery hold nothing for the "
            f"directive + {missing} of {bench.recipients:,} recipients with no notice of it at the SMTP server",
        },
        {
            "metric": f"{name}_duplicate_notices",
            "value": notices.duplicated,
            "unit": "recipients",
            "target": "<= 0",
            "note": f"recipients the SMTP server received more than one message for the directive, raw (no "
            f"Message-ID deduplication; {extra} extra copies in all), {SETTLE_S:.0f}+ s after the last notice",
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


async def write_view(bench: ClusterBench, state: Path) -> int:
    """Impact's view of the registry straight into its snapshot, and a registry record (address, entitlement to
    both models) for every user NOTICE_SCOPE covers (bench.recipients); the snapshot is caught up past those
    records, so impact's view stays as written. Returns the users the mission directive affects."""
    from bench.impact import MISSION, build_view, evaluate
    from services.impact import view_snapshot as snapshots

    view = build_view(REGISTRY)
    mission = evaluate(view, MISSION)
    users = BitMap.union(*evaluate(view, NOTICE_SCOPE).by_model.values())
    settings = KafkaSettings(bootstrap=bench.kafka.bootstrap)
    async with kafka.producing(settings, "bench-faults-users") as producer:
        pending = []
        for user in users:
            record = user_upserted(user, f"u{user}@bench.example", MODELS, producer="bench")
            pending.append(await producer.send(USERS.name, record.model_dump_json().encode(), key=user_key(user)))
        await asyncio.gather(*pending)
    offsets = await kafka.end_offsets(settings, USERS, "bench-faults-users")
    snapshots.write(snapshots.snapshot_path(state), view.columns(), offsets)
    bench.recipients = len(users)
    return mission.users


async def notifier_from_now(bench: ClusterBench) -> None:
    """Move the notifier's group to the end of what it consumes: it joins after the timed 1M-user runs, whose
    notices (to users without a registry record) it is not there for."""
    settings = bench.kafka.access.settings("notifier")
    group = NotifierSettings.model_fields["group_id"].default
    await group_starts_at(settings, group, await topics_end(settings, IMPACT, ENFORCEMENT))


async def measure(bench: ClusterBench, chosen: tuple[str, ...], runs: int) -> list[dict[str, Any]]:
    bootstrap = bench.kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap), replication=3, min_insync_replicas=2)
    state = RUN / "state" / "shared"
    rows: list[dict[str, Any]] = []
    async with AckWatch(bootstrap) as watch:
        affected = await write_view(bench, state)
        bench.start_services(state)
        await watch.until(lambda: all(watch.heartbeats.get(c) for c in CLUSTERS), "three ready agents", 120)
        producer = kafka.producer(KafkaSettings(bootstrap=bootstrap), "bench-faults", linger_ms=2)
        await producer.start()
        try:
            print(f"three brokers: directive published -> acked, {REGISTRY:,}-user registry", flush=True)
            totals, _ = await directive_runs(bench, watch, producer, state, REGISTRY, runs, affected=affected)
            if totals:
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
            await notifier_from_now(bench)
            bench.start_others()
            await asyncio.to_thread(bench.stack.wait_ready, 180)
            print(f"faults: directives covering {bench.recipients:,} users, each of them a recipient", flush=True)
            rows += await scenarios(bench, watch, producer, state, chosen)
        finally:
            await producer.stop()
    return rows


async def scenarios(
    bench: ClusterBench, watch: AckWatch, producer: Any, state: Path, chosen: tuple[str, ...]
) -> list[dict[str, Any]]:
    cluster = bench.kafka
    await start_impact(bench, state)
    rows: list[dict[str, Any]] = []
    for name in chosen:
        if name == "broker_kill":
            node = next(n for n in range(1, cluster.nodes + 1) if n != cluster.active_controller())
            fault = Fault(name, lambda n=node: cluster.kill(n), lambda n=node: cluster.restart(n))
        elif name == "controller_kill":
            leader = cluster.active_controller()
            fault = Fault(name, lambda n=leader: cluster.kill(n), lambda n=leader: cluster.restart(n))
        elif name == "broker_pause":
            fault = paused_broker(cluster)
        else:
            service = name.removesuffix("_kill")
            process = KILLED_AGENT if service == "agent" else service
            fault = Fault(name, lambda p=process: bench.stack.kill_and_restart(p), restarted=process)
        rows += await fault_run(bench, watch, producer, fault)
    bench.stack.stop_one("impact")
    return rows


def paused_broker(cluster: LocalCluster) -> Fault:
    paused = next(n for n in range(1, cluster.nodes + 1) if n != cluster.active_controller())
    paused_at: list[float] = []

    def pause() -> None:
        paused_at.append(time.time())
        cluster.freeze(paused)

    def resume() -> None:  # not before the session timeout has fenced it, however fast the rest recovered
        time.sleep(max(0.0, paused_at[0] + PAUSE_S - time.time()))
        cluster.thaw(paused)

    return Fault("broker_pause", pause, resume)


def scenario_names(text: str) -> tuple[str, ...]:
    """The scenarios named in a comma-separated list, in the bench's order; ValueError naming any unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    return tuple(n for n in SCENARIOS if n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    parser.add_argument("--runs", type=int, default=E2E_RUNS, help="timed directives before the faults (0: none)")
    args = parser.parse_args()
    try:
        chosen = scenario_names(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    with ClusterBench() as bench:
        rows = asyncio.run(measure(bench, chosen, args.runs))
    publish("faults", rows, "enforcement and notices on a three-node Kafka cluster, and recovery from faults")


if __name__ == "__main__":
    main()
