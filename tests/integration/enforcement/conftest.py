"""Fixtures and helpers of the enforcement integration tests (real Kafka): the service in-process, fake and real
serving agents, impact messages, topic readers."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
from aiokafka import TopicPartition
from pyroaring import BitMap

from services.agent.app import build as build_agent
from services.agent.settings import AgentSettings
from services.enforcement.app import EnforcementService, build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, encode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import ACKS, COMMANDS, SETS, Topic, key_of
from shared.contracts.directives import DirectiveScope
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from shared.contracts.serving import AgentHeartbeat, CommandApplied, HeldDirective
from shared.contracts.set_copies import decode_chunk, value_digest
from shared.runtime.kafka import consumer, producer, producing
from shared.runtime.settings import KafkaSettings

WRONG = "0" * 64


def settings_for(bootstrap: str, state: Path) -> EnforcementSettings:
    return EnforcementSettings(
        kafka={"bootstrap": bootstrap},
        state_dir=state,
        deadline_check_interval_s=0.2,
        resend_backoff_base_s=0.5,
        resend_backoff_cap_s=2.0,
        heartbeat_grace_s=0,
    )


@contextlib.asynccontextmanager
async def running(bootstrap: str, state: Path, **overrides: Any):
    service: EnforcementService = build(settings_for(bootstrap, state).model_copy(update=overrides))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def publish(
    bootstrap: str, topic: Topic, *messages: Any, raw: bytes | None = None, raw_key: bytes = b"poison"
) -> None:
    """Publish contract messages (after one raw value if given) with the catalogue's keys."""
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-publish") as producer:
        if raw is not None:
            await producer.send_and_wait(topic.name, raw, key=raw_key)
        for message in messages:
            await producer.send_and_wait(topic.name, message.model_dump_json().encode(), key=key_of(topic, message))


def impact(
    directive: str,
    sets: dict[str, BitMap],
    *,
    action: str = "restrict",
    revision: int = 1,
    deadline_s: int = 120,
    ids_per_chunk: int = 40,
) -> list[Any]:
    """An ImpactAssessed and its chunks, as the impact service publishes them."""
    parts = [(m, p) for m in sorted(sets) for p in chunk_bitmap(sets[m], ids_per_chunk)]
    digests = {m: set_digest(b) for m, b in sets.items()}
    assessed = ImpactAssessed(
        producer="impact",
        correlation_id=directive,
        directive_id=directive,
        revision=revision,
        action=action,
        scope=DirectiveScope(models=sorted(sets), selector={"kind": "everyone"}, enforcement_deadline_s=deadline_s),
        affected_by_model={m: len(b) for m, b in sets.items()},
        affected_users=len(BitMap.union(*sets.values())),
        model_digests=digests,
        digest=scope_digest(digests),
        registry_offsets={0: 0},
        chunks=len(parts),
    )
    return [
        assessed,
        *(
            AffectedSetChunk(
                producer="impact",
                correlation_id=directive,
                directive_id=directive,
                revision=revision,
                action=action,
                model=m,
                chunk=i,
                chunks=len(parts),
                users=encode_bitmap(p),
            )
            for i, (m, p) in enumerate(parts)
        ),
    ]


class TopicReader:
    """Reads a topic from its end at start (or beginning) in the background, parsing with the catalogue."""

    def __init__(self, bootstrap: str, topic: Topic, *, from_beginning: bool = False) -> None:
        self.bootstrap, self.topic, self.from_beginning = bootstrap, topic, from_beginning
        self.messages: list[Any] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = consumer(KafkaSettings(bootstrap=self.bootstrap), f"tests-read-{self.topic.name}")
        await self._consumer.start()
        partitions = [TopicPartition(self.topic.name, p) for p in range(self.topic.partitions)]
        self._consumer.assign(partitions)
        if self.from_beginning:
            await self._consumer.seek_to_beginning(*partitions)
        else:
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:
                await self._consumer.position(tp)  # resolve the end offset now, before anything is published
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for record in self._consumer:
            self.messages.append(await self.on_record_read(record))

    async def on_record_read(self, record: Any) -> Any:
        return self.on_record(record)

    def on_record(self, record: Any) -> Any:
        return self.topic.adapter.validate_json(record.value)

    def where(self, **fields: Any) -> list[Any]:
        return [m for m in self.messages if all(getattr(m, k, None) == v for k, v in fields.items())]

    async def __aexit__(self, *exc: Any) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


class FakeAgent(TopicReader):
    """A serving agent: stages restrict chunks, answers with the digest of what it holds.

    mode "faithful" answers correctly; "silent" never answers; "wrong_once" answers a wrong digest the
    first time, then correctly.
    """

    def __init__(self, bootstrap: str, cluster: str, models: list[str], mode: str = "faithful") -> None:
        super().__init__(bootstrap, COMMANDS)
        self.cluster, self.models, self.mode = cluster, models, mode
        self.staged: dict[tuple[str, int], dict[int, Any]] = {}
        self.held: dict[str, tuple[int, dict[str, BitMap]]] = {}
        self.answers = 0
        self._pending: list[Any] = []
        self.copies: dict[str, dict[str, BitMap]] = {}  # restrict command id -> the sets it references

    async def __aenter__(self) -> FakeAgent:
        self._producer = producer(KafkaSettings(bootstrap=self.bootstrap), f"tests-fake-agent-{self.cluster}")
        await self._producer.start()
        self._sets = consumer(KafkaSettings(bootstrap=self.bootstrap), f"tests-fake-agent-sets-{self.cluster}")
        await self._sets.start()
        await super().__aenter__()
        self._beats = asyncio.create_task(self._beat_forever())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._beats
        await super().__aexit__(*exc)
        await self._producer.stop()
        await self._sets.stop()

    def commands(self) -> list[Any]:
        return [m for m in self.messages if m is not None]

    async def on_record_read(self, record: Any) -> Any:
        command = super().on_record(record)
        if command.cluster_id != self.cluster:
            return None
        if command.type == "RestrictCommand" and command.sets is not None:
            self.copies[command.event_id] = {ref.model: await self.read_copy(ref) for ref in command.sets}
        self._apply(command)
        return command

    async def read_copy(self, ref: Any) -> BitMap:
        """One referenced set copy, read by offset from the sets topic and checked against its digests."""
        tp = TopicPartition(SETS.name, ref.partition)
        self._sets.assign([tp])
        users = BitMap()
        for index, offset in enumerate(ref.offsets):
            self._sets.seek(tp, offset)
            [record] = (await self._sets.getmany(tp, timeout_ms=10_000, max_records=1))[tp]
            assert record.offset == offset and value_digest(record.value) == ref.chunk_digests[index]
            users |= decode_chunk(record.value)[2]
        assert set_digest(users) == ref.digest
        return users

    def _apply(self, command: Any) -> None:
        if command.type == "RestrictCommand" and command.sets is not None:
            self.held[command.directive_id] = (command.revision, self.copies.pop(command.event_id))
            self._answer(command, "restrict")
        elif command.type == "RestrictCommand":
            staged = self.staged.setdefault((command.directive_id, command.revision), {})
            staged[command.chunk] = command
            if len(staged) == command.chunks:
                sets: dict[str, BitMap] = {}
                for chunk in self.staged.pop((command.directive_id, command.revision)).values():
                    sets[chunk.model] = sets.get(chunk.model, BitMap()) | decode_bitmap(chunk.users)
                self.held[command.directive_id] = (command.revision, sets)
                self._answer(command, "restrict")
        elif command.type == "DeltaCommand":
            revision, sets = self.held[command.directive_id]
            if command.model in sets:  # a model the cluster does not serve only advances the seq
                sets[command.model] = (sets[command.model] | decode_bitmap(command.added)) - decode_bitmap(
                    command.removed
                )
            self._answer(command, "delta")
        else:
            self.held.pop(command.directive_id, None)
            self._answer(command, "lift")

    def digest_of(self, directive_id: str) -> str:
        if directive_id not in self.held:
            return scope_digest({})
        return scope_digest({m: set_digest(b) for m, b in self.held[directive_id][1].items()})

    def claim(self, directive_id: str) -> str:
        """The digest this agent reports: wrong until its second answer in mode wrong_once."""
        return WRONG if self.mode == "wrong_once" and self.answers <= 1 else self.digest_of(directive_id)

    def _answer(self, command: Any, action: str) -> None:
        if self.mode == "silent":
            return
        self.answers += 1
        digest = self.claim(command.directive_id)
        ack = CommandApplied(
            producer=f"agent-{self.cluster}",
            cluster_id=self.cluster,
            directive_id=command.directive_id,
            revision=command.revision,
            action=action,
            digest=digest,
            seq=getattr(command, "seq", 0),
            causation_id=command.event_id,
        )
        asyncio.get_running_loop().create_task(self._send(ack))

    async def _send(self, message: Any) -> None:
        await self._producer.send_and_wait(ACKS.name, message.model_dump_json().encode(), key=key_of(ACKS, message))

    async def _beat_forever(self) -> None:
        while True:
            held = (
                {}
                if self.mode == "silent"
                else {d: HeldDirective(revision=r, digest=self.claim(d)) for d, (r, _) in self.held.items()}
            )
            await self._send(
                AgentHeartbeat(
                    producer=f"agent-{self.cluster}", cluster_id=self.cluster, models=self.models, held=held, ready=True
                )
            )
            await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def real_agent(bootstrap: str, cluster: str, models: list[str], state: Path):
    """The real agent (services.agent.app) for one cluster, in-process, its HTTP API on a free port."""
    agent = build_agent(
        AgentSettings(
            cluster_id=cluster,
            models=models,
            http_port=0,
            heartbeat_interval_s=0.3,
            readiness_poll_s=0.05,
            state_dir=state,
            kafka={"bootstrap": bootstrap},
        )
    )
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def denials(agent: Any, users: range, models: list[str]) -> set[tuple[int, str]]:
    """The (user, model) pairs the agent's HTTP API denies, asked in one batch."""
    checks = [{"user": u, "model": m} for u in users for m in models]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.http_port}", timeout=10.0) as client:
        response = await client.post("/v1/access:batch", json={"checks": checks})
    assert response.status_code == 200, response.text
    return {(r["user"], r["model"]) for r in response.json()["results"] if r["decision"] == "deny"}


async def ready(agent: Any) -> bool:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.http_port}", timeout=10.0) as client:
        return (await client.get("/readyz")).status_code == 200


def pairs(sets: dict[str, BitMap], served: list[str]) -> set[tuple[int, str]]:
    """The (user, model) pairs a directive's sets deny on a cluster serving these models."""
    return {(u, m) for m, users in sets.items() if m in served for u in users}
