"""`make up` / `make down`: a local stack that stays up, to try the CLI against.

`up` starts a fresh Kafka and every service in the background (their state in the services' default
layout, `.run/state`), loads a synthetic registry, records what it started in `.run/up/stack.json`, writes
the CLI's environment to `.run/up/env` and prints the endpoints. `down` stops exactly what is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from cli.stack_record import StackRecord, Started, stop_processes
from devtools import ROOT
from devtools.broker import LocalBroker
from devtools.registry import population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from shared.runtime.auth import Role
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

RUN_DIR = ROOT / ".run" / "up"
STATE_DIR = ROOT / ".run" / "state"  # every service's default state_dir: the CLI's defaults find it
APIS = {
    "console": "/ (web console)",
    "intake": "/directives",
    "impact": "/directives/preview",
    "agent": "/v1/access?user=1&model=fable-5",
}
console = Console(highlight=False, soft_wrap=True)


def up(run_dir: Path, state_dir: Path, users: int, seed: int, timeout_s: float) -> int:
    """Start everything, or show what runs already; 0 once every service is ready."""
    record = StackRecord.load(run_dir)
    if record is not None and record.alive():
        console.print("[yellow]already up[/yellow] (started by an earlier `make up`; `make down` stops it)")
        show(record)
        return 0
    if record is not None:
        stop_and_forget(record)  # a stack that half died: clear what is left before starting afresh
    for folder in (state_dir, run_dir / "logs"):
        shutil.rmtree(folder, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    kafka = LocalBroker(run_dir / "kafka")
    stack = Stack(kafka.bootstrap, run_dir, state_root=state_dir, console=True)
    record = StackRecord(run_dir, kafka.bootstrap, str(kafka.data), str(state_dir))
    try:
        started = time.monotonic()
        record.save()  # before anything runs: `make down` finds the broker even if this is interrupted
        kafka.start()
        stack.access = kafka.access  # each service logs in as its own principal; this process as tooling
        kafka.access.export()
        asyncio.run(apply_topics(KafkaSettings(bootstrap=kafka.bootstrap)))
        stack.start(timeout_s)
        record.processes = [_started(stack, name) for name in stack.processes]
        record.save()
        console.print(f"Kafka and {len(record.processes)} service processes ready in {time.monotonic() - started:.0f}s")
        if users:
            loaded = asyncio.run(load_registry(kafka.bootstrap, population.generate(users, seed)))
            console.print(f"registry: {loaded:,} synthetic users (ids 1..{loaded}, seed {seed}) on identity.users.v1")
    except BaseException:
        console.print("[red]make up failed[/red]: stopping what it started" + f" (logs in {run_dir / 'logs'})")
        stack.stop()
        kafka.stop()
        record.forget()
        raise
    write_env(record, stack)
    show(record)
    return 0


def down(run_dir: Path) -> int:
    """Stop what `up` recorded in run_dir; nothing recorded is fine (safe to run twice)."""
    record = StackRecord.load(run_dir)
    if record is None:
        console.print(f"nothing to stop (no {run_dir / 'stack.json'})")
        return 0
    stop_and_forget(record)
    return 0


def stop_and_forget(record: StackRecord) -> None:
    stopped = stop_processes(record.processes)
    if record.kafka_data:
        LocalBroker(Path(record.kafka_data)).stop()
    record.forget()
    (record.run_dir / "env").unlink(missing_ok=True)
    console.print(f"stopped {len(stopped)} service processes and Kafka; state kept in {record.state_dir}")


def env_lines(record: StackRecord) -> list[str]:
    """The shell lines that point the `countermand` CLI at this stack."""
    urls = {process.name: process.url for process in record.processes}
    return [
        f"# source {record.run_dir / 'env'}: the countermand CLI against the stack `make up` started",
        f'export PATH="{Path(sys.executable).parent}:$PATH"',
        f"export COUNTERMAND_KAFKA_BOOTSTRAP={record.bootstrap}",
        f"export COUNTERMAND_INTAKE_URL={urls['intake']}",
        f"export COUNTERMAND_IMPACT_URL={urls['impact']}",
        f"export COUNTERMAND_AUDIT_STATE_DIR={record.state_dir}",
    ]


def write_env(record: StackRecord, stack: Stack | None = None) -> Path:
    """The CLI's environment for this stack: its URLs, the Kafka login of the tooling principal, and tokens of
    the local identity provider (alice proposes and views, bob approves; each valid 12 hours)."""
    lines = env_lines(record)
    if stack is not None and stack.access is not None:
        login = stack.access.env()
        lines += [f"export {k}={shlex.quote(v)}" for k, v in login.items() if k != "COUNTERMAND_KAFKA_BOOTSTRAP"]
        alice = stack.issuer.mint("alice@example.com", [Role.PROPOSER, Role.VIEWER], ttl_s=12 * 3600)
        bob = stack.issuer.mint("bob@example.com", [Role.APPROVER, Role.VIEWER], ttl_s=12 * 3600)
        lines += [
            f"export COUNTERMAND_TOKEN={alice}  # alice@example.com: proposer, viewer",
            f"export APPROVER_TOKEN={bob}  # bob@example.com: approver (countermand directive approve --token ...)",
        ]
    path = record.run_dir / "env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def show(record: StackRecord) -> None:
    """The endpoints, where the logs and state are, and how to use the CLI against the stack."""
    width = max(len(process.name) for process in record.processes)
    console.print("[bold]Countermand is up[/bold]; every path below is under its service's URL")
    console.print(f"{'service':<{width}}  {'URL':<24}  {'API':<34}  health, readiness, metrics")
    for process in record.processes:
        api = APIS.get(process.module, "-")
        console.print(f"{process.name:<{width}}  {process.url:<24}  {api:<34}  /healthz  /readyz  /metrics")
    logs = record.run_dir / "logs"
    console.print(f"Kafka        {record.bootstrap} (data and server.log in {record.kafka_data})")
    console.print(f"logs         {logs}/<service>.log (JSON lines), e.g. tail -f {logs}/intake.log")
    console.print(f"state        {record.state_dir}")
    console.print(f"CLI          source {record.run_dir / 'env'}   then e.g. countermand status")
    console.print("stop         make down")


def _started(stack: Stack, name: str) -> Started:
    process = stack.processes[name]
    module = "agent" if name.startswith("agent-") else name
    return Started(name, module, process.popen.pid, process.http_port or 0, str(process.log))


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="stack.json, env, logs/ and kafka/")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="every service's state (up)")
    parser.add_argument("--users", type=int, default=100_000, help="synthetic users to load (up; 0: none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for every service to be ready")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if args.command == "down":
        return down(run_dir)
    signal.signal(signal.SIGINT, _interrupt)  # Ctrl-C or SIGTERM while starting: stop what was started
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return up(run_dir, args.state_dir.resolve(), args.users, args.seed, args.timeout)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
