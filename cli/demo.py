"""`make run`: the mission end to end on a real Kafka broker, with a readable summary.

Starts Kafka and every service (with a token issuer of its own: every API call names its caller), loads a
synthetic registry, has one person propose the mission's directive (models fable-5 and mythos-5, every
foreign national of the US, employees included) and another approve it, waits for enforcement,
prints who is affected, per-cluster acknowledgement latency, notices and access checks; shows a forged lift
sent straight to the commands topic refused by the agent with access unchanged; then lifts
the directive, shows access restored, prints the audit timeline and verification, and stops all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.local_stack import RUN_DIR as UP_RUN_DIR
from cli.local_stack import STATE_DIR
from cli.stack_record import StackRecord
from devtools import ROOT
from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.demography import COUNTRY_INDEX, EMPLOYEE
from devtools.registry.loader import load as load_registry
from devtools.registry.oracle import affected_users
from devtools.scenarios import mission_body, mission_scope
from devtools.stack import Stack
from shared.contracts.catalogue import ACKS, COMMANDS, ENFORCEMENT, IMPACT, NOTIFICATIONS
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.impact import ImpactAssessed
from shared.contracts.notifications import NotificationDelivered
from shared.contracts.serving import CommandFailed, LiftCommand
from shared.runtime.kafka import producing
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

console = Console()


def _step(text: str) -> None:
    console.rule(f"[bold cyan]{text}")


async def _load_users(bootstrap: str, users: int, seed: int) -> registry_population.Population:
    population = registry_population.generate(users, seed)
    with Progress(
        TextColumn("loading registry"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("load", total=users)
        started = time.monotonic()
        await load_registry(bootstrap, population, progress=lambda done, _total: progress.update(task, completed=done))
    console.print(f"{users:,} users produced to identity.users.v1 in {time.monotonic() - started:.1f}s")
    return population


PROPOSER, APPROVER = "alice@compliance.example", "bob@legal.example"


def _four_eyes(proposed: dict, approved: dict) -> None:
    console.print(
        f"proposed by [bold]{proposed['proposed_by']}[/bold] as {proposed['proposal_id']}; "
        f"approved by [bold]{', '.join(approved['approved_by'])}[/bold] -> {approved['state']} "
        f"{approved['directive_id']} revision {approved['revision']}"
    )


def _summary(assessed: ImpactAssessed, enforced: DirectiveEnforced) -> None:
    title = f"{assessed.directive_id} rev {assessed.revision}: affected"
    table = Table("model", "users covered (denied)", "users losing access (entitled)", title=title)
    losing = assessed.losing_by_model or {}
    for model, count in sorted(assessed.affected_by_model.items()):
        table.add_row(model, f"{count:,}", f"{losing[model]:,}" if model in losing else "n/a")
    table.add_row("[bold]distinct users", f"[bold]{assessed.affected_users:,}")
    table.add_row("only because nationality/residence unknown", f"{assessed.unknown_only:,}")
    console.print(table)
    countries = Table("residence", "users", title="affected by country of residence (top 12)")
    for country, count in sorted(assessed.by_country.items(), key=lambda kv: -kv[1])[:12]:
        countries.add_row(country, f"{count:,}")
    kinds = Table("account type", "users", title="affected by account type")
    for kind, count in sorted(assessed.by_account_type.items()):
        kinds.add_row(kind, f"{count:,}")
    console.print(countries, kinds)
    acks = Table("cluster", "state", "ack latency", "digest", title="enforcement acknowledgements")
    for cluster, progress in sorted(enforced.clusters.items()):
        acks.add_row(
            cluster,
            progress.state,
            f"{enforced.ack_latency_s.get(cluster, 0) * 1000:.0f} ms",
            (progress.digest or "")[:16] + "…",
        )
    console.print(acks)
    console.print(
        f"impact digest {assessed.digest[:16]}… computed at registry offsets {dict(assessed.registry_offsets)}"
    )


def _sample_users(population: registry_population.Population) -> list[tuple[str, int]]:
    """One user of each kind the mission's precision depends on, found in the generated columns."""
    us, p = COUNTRY_INDEX["US"], population
    us_national = (p.nat1 == us) | (p.nat2 == us)
    kinds = {
        "US citizen living in the US": (p.nat1 == us) & (p.nat2 == -1) & (p.residence == us),
        "foreign national living in the US": ~us_national & ~p.nat_unknown & (p.residence == us),
        "foreign national abroad": ~us_national & ~p.nat_unknown & (p.residence != us) & (p.residence >= 0),
        "dual national, US and another": us_national & (p.nat2 >= 0),
        "nationality unknown": p.nat_unknown,
        "employee, not a US national": ~us_national & ~p.nat_unknown & (p.account_type == EMPLOYEE),
        "employee, US national": us_national & (p.account_type == EMPLOYEE),
    }
    picked: list[tuple[str, int]] = []
    for label, mask in kinds.items():
        candidates = [int(u) for u in p.user_id[np.flatnonzero(mask)[:50]] if int(u) not in {u for _, u in picked}]
        if candidates:
            picked.append((label, candidates[0]))
    return picked


def _access_table(stack: Stack, samples: list[tuple[str, int]], title: str) -> list[str]:
    table = Table("user", "who", *[f"{c.cluster_id}" for c in stack.clusters], title=title)
    decisions = []
    for label, user_id in samples:
        cells = []
        for cluster in stack.clusters:
            parts = []
            for model in ("fable-5", "mythos-5", "lyric-4"):
                if model not in cluster.models:
                    continue
                reply = httpx.get(
                    f"{stack.agent(cluster.cluster_id).url}/v1/access",
                    params={"user": user_id, "model": model},
                    headers=stack.gateway,  # a gateway's API key
                    timeout=5,
                ).json()
                decisions.append(reply["decision"])
                colour = "red" if reply["decision"] == "deny" else "green"
                parts.append(f"{model} [{colour}]{reply['decision']}[/{colour}]")
            cells.append("\n".join(parts))
        table.add_row(str(user_id), label, *cells)
    console.print(table)
    return decisions


async def _notices(bootstrap: str, directive_id: str, revision: int, action: str, expected: int) -> int:
    async with TopicReader(bootstrap, NOTIFICATIONS) as reader:

        def delivered(messages: list) -> int:
            return sum(
                1
                for m in messages
                if isinstance(m, NotificationDelivered)
                and m.directive_id == directive_id
                and m.revision == revision
                and m.action == action
            )

        await reader.drain(lambda ms: delivered(ms) >= expected, 180, f"{expected:,} {action} notices")
        return delivered(reader.messages)


async def _await_enforced(
    bootstrap: str, directive_id: str, revision: int, action: str, timeout: float
) -> tuple[ImpactAssessed, DirectiveEnforced]:
    async with TopicReader(bootstrap, IMPACT) as impact, TopicReader(bootstrap, ENFORCEMENT) as enforcement:

        def match(m: object, kind: type) -> bool:
            return (
                isinstance(m, kind) and m.directive_id == directive_id and m.revision == revision and m.action == action
            )

        assessed = await impact.wait_for(lambda m: match(m, ImpactAssessed), timeout, "impact assessment")
        enforced = await enforcement.wait_for(lambda m: match(m, DirectiveEnforced), timeout, "enforcement")
        return assessed, enforced


def _cli(stack: Stack, *args: str) -> None:
    """A `countermand` command as an operator types it: from the repository, with no setting but the broker's
    address (which `make run` picks), the operator's Kafka login (the tooling principal, as the demo itself) and
    the signers' public keys; the audit's state only when not in the default place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERMAND_")}
    env.update(stack.access.env() if stack.access is not None else {})
    env["COUNTERMAND_KAFKA_BOOTSTRAP"] = stack.bootstrap
    env["COUNTERMAND_AUDIT_RECORD_KEYS"] = json.dumps(stack.record_key_sets())  # forgeries are flagged
    if stack.state_root != STATE_DIR:
        env["COUNTERMAND_AUDIT_STATE_DIR"] = str(stack.state_root)
    subprocess.run([sys.executable, "-m", "cli.main", *args], check=False, cwd=ROOT, stdin=subprocess.DEVNULL, env=env)


def demo_stack(bootstrap: str, run_dir: Path, state_dir: Path = STATE_DIR) -> Stack:
    """The demo's stack: logs under run_dir, state in the services' default layout (what `countermand audit
    report` and the other commands read without options after `make run`)."""
    return Stack(bootstrap, run_dir, state_root=state_dir)


async def mission(stack: Stack, users: int, seed: int) -> None:
    bootstrap = stack.bootstrap
    _step(f"1/6 loading a synthetic registry of {users:,} users")
    population = await _load_users(bootstrap, users, seed)
    samples = _sample_users(population)

    _step("2/6 the mission directive: proposed by one person, approved by another")
    body = mission_body()
    started = time.monotonic()
    proposed, issued = await asyncio.to_thread(stack.issue, body, PROPOSER, APPROVER)
    directive_id, revision = issued["directive_id"], issued["revision"]
    _four_eyes(proposed, issued)
    console.print(f"issued {directive_id} revision {revision}: {body['title']}")
    assessed, enforced = await _await_enforced(bootstrap, directive_id, revision, "restrict", 180)
    console.print(f"[bold green]enforced on every cluster {time.monotonic() - started:.2f}s after issue")
    _summary(assessed, enforced)

    _step("3/6 access checks through the agents")
    in_force = _access_table(stack, samples, "while the directive is in force")
    told = _losing(population)
    console.print(
        f"{assessed.affected_users:,} users covered, {told:,} of them entitled to a model the directive names: "
        "those are told (the others lose nothing)"
    )
    sent = await _notices(bootstrap, directive_id, revision, "restricted", told)
    mails = len(stack.mailbox.unique()) if stack.mailbox else 0
    console.print(f"notices sent: {sent:,} 'restricted'; the local SMTP server holds {mails:,} (log {stack.mail_log})")
    await _forged_lift(stack, directive_id, revision, samples, in_force)

    _step("4/6 lifting the directive (proposed and approved too)")
    started = time.monotonic()
    _four_eyes(*await asyncio.to_thread(stack.lift, directive_id, "Order revoked", PROPOSER, APPROVER))
    restored, lifted = await _await_enforced(bootstrap, directive_id, revision, "lift", 180)
    console.print(
        f"[bold green]lift enforced {time.monotonic() - started:.2f}s after the request; "
        f"{restored.affected_users:,} users get their access back"
    )
    _access_table(stack, samples, "after the lift")
    sent = await _notices(bootstrap, directive_id, revision, "restored", told)
    console.print(f"notices sent: {sent:,} 'restored'")

    _step("5/6 audit timeline and verification")
    await asyncio.sleep(2)  # let the audit consume the last events
    # As the README shows them: the ledger is where the audit CLI looks by default (the stack's state_root).
    _cli(stack, "audit", "report", directive_id)
    _cli(stack, "audit", "verify")
    _cli(stack, "status", directive_id)


def _losing(population: registry_population.Population) -> int:
    """Users the mission covers who hold at least one of its models: the ones told. Worked out by the brute-force
    oracle, one user at a time, independently of impact and the notifier."""
    scope = mission_scope()
    users = registry_population.records(population, 0, len(population))
    covered = affected_users(scope.selector, users, scope.unknown_attribute)
    models = set(scope.models)
    return sum(1 for user in users if user["user_id"] in covered and models & set(user["entitlements"]))


async def _forged_lift(
    stack: Stack, directive_id: str, revision: int, samples: list[tuple[str, int]], in_force: list[str]
) -> None:
    """An attacker with produce rights on the commands topic (this process's principal has them) sends an unsigned
    LiftCommand to one cluster: its agent refuses it, reports why on the acks topic, and access is unchanged."""
    cluster = stack.clusters[0].cluster_id
    forged = LiftCommand(producer="enforcement", cluster_id=cluster, directive_id=directive_id, revision=revision)
    console.print(f"a forged LiftCommand for {directive_id} sent straight to {COMMANDS.name} (cluster {cluster})")
    settings = KafkaSettings(bootstrap=stack.bootstrap)
    async with TopicReader(settings, ACKS) as acks:
        async with producing(settings, "demo-forger", linger_ms=0) as producer:
            await producer.send_and_wait(COMMANDS.name, forged.model_dump_json().encode(), key=cluster.encode())
        refused = await acks.wait_for(
            lambda m: isinstance(m, CommandFailed) and m.causation_id == forged.event_id, 60, "the agent's refusal"
        )
    after = await asyncio.to_thread(_access_table, stack, samples, f"after the forged lift on {cluster}")
    unchanged = "[green]access unchanged[/green]" if after == in_force else "[red]ACCESS CHANGED[/red]"
    console.print(f"agent {cluster}: [bold]{refused.reason}[/bold]; {unchanged}")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka-dir", type=Path, default=Path(".run/demo-kafka"))
    parser.add_argument("--run-dir", type=Path, default=Path(".run/demo"), help="the services' logs")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="every service's state (emptied first)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    # Our own handlers, installed before asyncio.run (which then leaves SIGINT alone): the interrupt
    # surfaces wherever the demo is, even inside a library that swallows task cancellation.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    wall = time.monotonic()
    state_dir = args.state_dir.resolve()
    if (up := StackRecord.load(UP_RUN_DIR)) is not None and up.alive() and Path(up.state_dir) == state_dir:
        console.print(f"[red]`make up` runs a stack on {state_dir}[/red]: `make down` first, or pass --state-dir")
        return 1
    run_dir = args.run_dir.resolve()
    for folder in (run_dir, state_dir):
        shutil.rmtree(folder, ignore_errors=True)
    kafka = LocalBroker(args.kafka_dir)
    stack = demo_stack(kafka.bootstrap, run_dir, state_dir)
    try:
        _step("starting Kafka and every service")
        started = time.monotonic()
        kafka.start()
        stack.access = kafka.access  # each service logs in as its own principal; the demo's own calls as tooling
        kafka.access.export()
        console.print(f"Kafka ready in {time.monotonic() - started:.1f}s (SASL_SSL, one principal per service)")
        asyncio.run(apply_topics(KafkaSettings(bootstrap=stack.bootstrap)))
        started = time.monotonic()
        stack.start()
        console.print(
            f"{len(stack.processes)} service processes ready in {time.monotonic() - started:.1f}s "
            f"(logs in {run_dir / 'logs'})"
        )
        asyncio.run(mission(stack, args.users, args.seed))
        _step("6/6 done")
        console.print(f"[bold]mission complete in {time.monotonic() - wall:.1f}s")
        console.print(
            f"the audit ledger stays in {state_dir}: `countermand audit report EXP-2026-001` and "
            "`countermand audit verify` work after this run; `make up` runs a stack that stays up"
        )
        return 0
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything")
        return 130
    except Exception as exc:
        console.print(f"[red]demo failed: {exc}[/red] (service logs in {run_dir / 'logs'})")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        kafka.stop()


if __name__ == "__main__":
    sys.exit(main())
