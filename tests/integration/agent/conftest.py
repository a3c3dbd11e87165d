"""Fixtures and helpers of the agent's integration tests: run an agent (in-process or as a process), produce
commands, read acks and dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pyroaring import BitMap

from devtools.ports import free_port
from devtools.processes import terminate
from devtools.stack import ROOT
from devtools.waiting import eventually
from services.agent.app import Agent, build
from services.agent.settings import AgentSettings
from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import COMMANDS
from shared.contracts.serving import ClusterSynced, LiftCommand, RestrictCommand
from shared.runtime.kafka import consumer, producer
from shared.runtime.settings import KafkaSettings

TIMEOUT_S = 60.0
MODELS = ["fable-5", "mythos-5"]


def agent_settings(bootstrap: str, cluster: str, state_dir: Path) -> AgentSettings:
    return AgentSettings(
        cluster_id=cluster,
        models=MODELS,
        http_port=0,
        heartbeat_interval_s=0.5,
        readiness_poll_s=0.1,
        state_dir=state_dir,
        kafka=KafkaSettings(bootstrap=bootstrap),
    )


def new_agent(bootstrap: str, cluster: str, state_dir: Path) -> Agent:
    return build(agent_settings(bootstrap, cluster, state_dir))


def http(agent: Agent) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.http_port}", timeout=10.0)


async def wait_ready(agent: Agent) -> None:
    async with http(agent) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, "agent readiness")


def restrict_chunks(
    cluster: str, directive: str, revision: int, parts: list[tuple[str, list[int]]], **window: Any
) -> list[RestrictCommand]:
    sets: dict[str, BitMap] = {}
    for model, users in parts:
        sets[model] = sets.get(model, BitMap()) | BitMap(users)
    expected = scope_digest({model: set_digest(users) for model, users in sets.items()})
    return [
        RestrictCommand(
            producer="enforcement",
            correlation_id=directive,
            cluster_id=cluster,
            directive_id=directive,
            revision=revision,
            model=model,
            chunk=i,
            chunks=len(parts),
            users=encode_bitmap(BitMap(users)),
            expected_digest=expected,
            **window,
        )
        for i, (model, users) in enumerate(parts)
    ]


def synced(cluster: str) -> ClusterSynced:
    """What enforcement answers a not-ready heartbeat: everything in force for the cluster was sent before."""
    return ClusterSynced(producer="enforcement", cluster_id=cluster, heartbeat_event_id=f"beat-of-{cluster}")


def lift_command(cluster: str, directive: str, revision: int) -> LiftCommand:
    return LiftCommand(
        producer="enforcement", correlation_id=directive, cluster_id=cluster, directive_id=directive, revision=revision
    )


class Commands:
    """Produces raw or contract messages onto serving.commands.v1, keyed by cluster."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = producer(KafkaSettings(bootstrap=bootstrap), "tests-agent-commands")

    async def __aenter__(self) -> Commands:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self._producer.stop()

    async def send(self, *commands: Any) -> None:
        for command in commands:
            await self._producer.send_and_wait(
                COMMANDS.name, command.model_dump_json().encode(), key=command.cluster_id.encode()
            )

    async def send_raw(self, cluster: str, value: bytes) -> None:
        await self._producer.send_and_wait(COMMANDS.name, value, key=cluster.encode())


def _json(value: bytes | None) -> Any:
    """A record's JSON value; None for a tombstone or another test's poison message on the shared topic."""
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


class TopicReader:
    """Reads a topic from the beginning, keeping every JSON value, and waits for a matching one."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = consumer(KafkaSettings(bootstrap=bootstrap), f"tests-read-{topic}", topic)
        self.seen: list[dict[str, Any]] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = TIMEOUT_S
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.seen.extend(value for r in records if (value := _json(r.value)) is not None)
            return next((m for m in self.seen if predicate(m)), None)

        return await eventually(probe, what, timeout)


class AgentProcess:
    """`python -m services.agent` as a real process, configured through the environment like the stack does."""

    def __init__(self, bootstrap: str, cluster: str, state_dir: Path, logs: Path, **settings: object) -> None:
        self.port = free_port()
        self.logs = logs
        # The session's Kafka login (COUNTERMAND_KAFKA_*) is kept: a test's own cluster id has no principal.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("COUNTERMAND_KAFKA_") or not k.startswith("COUNTERMAND_")
        }
        self.env.update(
            {
                "COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap,
                "COUNTERMAND_LOG_FORMAT": "json",
                "COUNTERMAND_AGENT_CLUSTER_ID": cluster,
                "COUNTERMAND_AGENT_MODELS": ",".join(MODELS),
                "COUNTERMAND_AGENT_HTTP_PORT": str(self.port),
                "COUNTERMAND_AGENT_STATE_DIR": str(state_dir),
                "COUNTERMAND_AGENT_HEARTBEAT_INTERVAL_S": "0.5",
                "COUNTERMAND_AGENT_READINESS_POLL_S": "0.1",
                "COUNTERMAND_AUTH": "off",  # who may ask: tests/unit/agent/test_http_auth.py and the e2e stack
                "COUNTERMAND_SIGNING_MODE": "off",  # these tests produce unsigned commands; signing: tests/e2e
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update({f"COUNTERMAND_AGENT_{k.upper()}": str(v) for k, v in settings.items()})
        self.runs: list[subprocess.Popen[bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        """Start (or restart, same state dir and port) the agent process."""
        with open(self.logs / f"agent-{len(self.runs) + 1}.log", "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.agent"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.runs.append(process)
        return process

    def kill(self) -> int:
        """SIGKILL the running process; returns its exit status."""
        process = self.runs[-1]
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM whatever still runs, SIGKILL it if it does not exit in time."""
        for process in self.runs:
            terminate(process, 30)
