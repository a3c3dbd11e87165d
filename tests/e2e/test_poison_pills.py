"""No record can stall the pipeline: poison on every consumed topic, every service restarted over it.

Each consumed topic gets a record of `max.message.bytes - 100` bytes, one with a 100 KB key and one with a
null value and a binary header (on the compacted registry topic a null value is a tombstone, so there the
key is what is wrong). Every consuming service dead-letters each one it reads, stays ready, and the
pipeline enforces the next directive on every cluster; restarted with the poison still on its topics,
every service becomes ready again and enforces and lifts another directive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from shared.contracts.catalogue import (
    ACKS,
    COMMANDS,
    DIRECTIVES,
    ENFORCEMENT,
    IMPACT,
    MAX_MESSAGE_BYTES,
    USERS,
    Topic,
    dead_letter_topic,
)
from shared.contracts.deadletter import DeadLetter
from shared.contracts.enforcement import DirectiveEnforced
from shared.runtime.kafka import producing, records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics, partition_for

pytestmark = pytest.mark.kafka

CONSUMERS: dict[str, tuple[Topic, ...]] = {
    "intake": (DIRECTIVES,),
    "impact": (DIRECTIVES, USERS),
    "enforcement": (IMPACT, ACKS),
    "notifier": (IMPACT, ENFORCEMENT, USERS),
    "agent": (COMMANDS,),
}
TIMEOUT = 180


@dataclass(frozen=True)
class Poison:
    """Where one poison record landed."""

    topic: str
    partition: int
    offset: int
    kind: str


def directive(directive_id: str, nationality: str) -> dict:
    return {
        "directive_id": directive_id,
        "title": f"poison check {directive_id}",
        "scope": {
            "models": ["fable-5"],
            "selector": {"kind": "nationality", "any_of": [nationality]},
            "enforcement_deadline_s": 120,
        },
    }


async def produce_poison(settings: KafkaSettings, clusters: list[str]) -> list[Poison]:
    """The three poison records on every data topic a service consumes (commands: on each cluster's partition)."""
    placed: list[Poison] = []
    async with producing(settings, "poison", linger_ms=0) as producer:

        async def send(
            topic: Topic,
            kind: str,
            key: bytes,
            value: bytes | None,
            partition: int | None = None,
            headers: list | None = None,
        ) -> None:
            meta = await producer.send_and_wait(topic.name, value, key=key, partition=partition, headers=headers)
            placed.append(Poison(topic.name, meta.partition, meta.offset, kind))

        for topic in (DIRECTIVES, USERS, IMPACT, ACKS, ENFORCEMENT):
            await send(topic, "big", b"poison-big", b"\xff" * (MAX_MESSAGE_BYTES - 100))
            await send(topic, "big-key", b"k" * 100_000, b"not json")
            await send(topic, "null", b"poison-null", None, headers=[("blob", b"\xff\xfe\x00")])
        for cluster in clusters:
            partition = partition_for(COMMANDS, cluster.encode())
            await send(COMMANDS, "big", cluster.encode(), b"\xff" * (MAX_MESSAGE_BYTES - 100))
            await send(COMMANDS, "big-key", b"k" * 100_000, b"not json", partition=partition)
            await send(COMMANDS, "null", cluster.encode(), None, headers=[("blob", b"\xff\xfe\x00")])
    return placed


async def letters(settings: KafkaSettings, service: str) -> set[tuple[str, int, int]]:
    found = set()
    async for record in records_to_end(settings, dead_letter_topic(service), "poison-check"):
        letter = DeadLetter.model_validate_json(record.value)
        found.add((letter.topic, letter.partition, letter.offset))
    return found


async def dead_lettered_everywhere(settings: KafkaSettings, poison: list[Poison]) -> dict[str, set]:
    """Per service, the poison records it consumes that are not dead-lettered yet (waits until none)."""
    missing: dict[str, set] = {}
    for _ in range(TIMEOUT):
        missing = {}
        for service, topics in CONSUMERS.items():
            expected = {(p.topic, p.partition, p.offset) for p in poison if p.topic in {t.name for t in topics}}
            missing[service] = expected - await letters(settings, service)
        if not any(missing.values()):
            return missing
        await asyncio.sleep(1)
    return missing


async def enforced(stack: Stack, settings: KafkaSettings, directive_id: str, action: str) -> DirectiveEnforced:
    async with TopicReader(settings, ENFORCEMENT) as status:
        return await status.wait_for(
            lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == directive_id and m.action == action,
            TIMEOUT,
            f"{action} of {directive_id}",
        )


def every_service_ready(stack: Stack) -> dict[str, int]:
    return {name: httpx.get(f"{proc.url}/readyz", timeout=5).status_code for name, proc in stack.processes.items()}


@pytest.fixture(scope="module")
def poison_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    """A broker of its own: the poison stays on every topic, for this test alone."""
    with LocalBroker(kafka_dir.with_name("poison-kafka"), secrets=kafka_secrets) as broker:
        yield broker


async def test_poison_on_every_topic_is_dead_lettered_and_nothing_stalls(
    poison_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(bootstrap=poison_kafka.bootstrap)
    await apply_topics(settings)
    stack = Stack(poison_kafka.bootstrap, tmp_path_factory.mktemp("poison-stack"), access=poison_kafka.access)
    await load_registry(poison_kafka.bootstrap, registry_population.generate(500, seed=5))
    await asyncio.to_thread(stack.start)
    try:
        poison = await produce_poison(settings, [c.cluster_id for c in stack.clusters])
        assert not any((await dead_lettered_everywhere(settings, poison)).values())

        await asyncio.to_thread(stack.issue, directive("POISON-1", "CN"))
        first = await enforced(stack, settings, "POISON-1", "restrict")
        assert set(first.clusters) == {c.cluster_id for c in stack.clusters}
        assert set(every_service_ready(stack).values()) == {200}

        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(stack.start)  # every service starts over the poison still on its topics
        assert set(every_service_ready(stack).values()) == {200}

        await asyncio.to_thread(stack.issue, directive("POISON-2", "RU"))
        second = await enforced(stack, settings, "POISON-2", "restrict")
        assert set(second.clusters) == {c.cluster_id for c in stack.clusters}
        await asyncio.to_thread(stack.lift, "POISON-2", "done")
        lifted = await enforced(stack, settings, "POISON-2", "lift")
        assert {p.state for p in lifted.clusters.values()} == {"applied"}
    finally:
        await asyncio.to_thread(stack.stop)
