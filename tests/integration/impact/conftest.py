"""Fixtures of the impact integration tests (the service in-process, a producer) and their helpers: users and
directives sent, the impact topic read back, the registry as of recorded offsets."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from pyroaring import BitMap

from devtools.registry.oracle import affected_users
from devtools.waiting import eventually
from services.impact.app import ImpactService, build
from services.impact.settings import ImpactSettings
from shared.contracts.bitmaps import decode_bitmap
from shared.contracts.catalogue import ALL_TOPICS, DIRECTIVES, IMPACT, USERS, dead_letter_topic
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveScope
from shared.contracts.users import UserUpserted, user_key
from shared.runtime.kafka import consuming, producing, records_to_end
from shared.runtime.kafka import end_offsets as topic_end_offsets
from shared.runtime.settings import KafkaSettings
from tests.unit.impact.population_builder import user

TIMEOUT_S = 60
FOREIGN_TO_US = {"kind": "foreign_national", "home_country": "US"}
_bases = itertools.count(1)


@pytest.fixture
async def service(bootstrap: str, tmp_path: Path) -> ImpactService:
    impact = build(ImpactSettings(kafka=KafkaSettings(bootstrap=bootstrap), state_dir=tmp_path))
    await impact.start()
    try:
        yield impact
    finally:
        await impact.stop()


@pytest.fixture
async def producer(bootstrap: str) -> AIOKafkaProducer:
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-impact") as client:
        yield client


def random_users(base: int, count: int, seed: int) -> list[UserUpserted]:
    rng = random.Random(seed)
    people = []
    for i in range(count):
        nationalities = rng.choice([None, [], ["US"], ["US", "IE"], ["DE"], ["CN", "RU"], ["IN"], ["FR", "US", "DE"]])
        people.append(
            user(
                base + i,
                nationalities,
                rng.choice([None, "US", "DE", "CN"]),
                rng.choice(["consumer", "enterprise_member", "employee"]),
                rng.choice([None, "org-1"]),
                tuple(rng.sample(["fable-5", "mythos-5"], rng.randint(0, 2))),
            )
        )
    return people


async def send_users(producer: AIOKafkaProducer, people: list[UserUpserted]) -> None:
    for person in people:
        await producer.send(USERS.name, person.model_dump_json().encode(), key=user_key(person.user_id))
    await producer.flush()


async def send_directive(producer: AIOKafkaProducer, event: DirectiveIssued | DirectiveLifted) -> None:
    await producer.send_and_wait(DIRECTIVES.name, event.model_dump_json().encode(), key=event.directive_id.encode())


def issued(
    directive: str, revision: int, selector: dict, models: list[str], unknown: str = "restrict"
) -> DirectiveIssued:
    return DirectiveIssued(
        producer="test",
        directive_id=directive,
        revision=revision,
        title="Export control",
        scope=DirectiveScope(models=models, selector=selector, unknown_attribute=unknown),
    )


async def read_until(
    bootstrap: str,
    topic: str,
    partitions: int,
    done: Callable[[list], bool],
    decode: Callable = lambda record: json.loads(record.value),
) -> list:
    """Every record of a topic from the beginning (decoded), polled until done(records) or the timeout."""
    async with consuming(KafkaSettings(bootstrap=bootstrap), "tests-impact-read") as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        seen: list = []
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while not done(seen):
            assert asyncio.get_running_loop().time() < deadline, f"timed out reading {topic}: {len(seen)} records"
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.extend(decode(r) for r in records)
        return seen


async def assessment_of(bootstrap: str, directive: str, action: str) -> tuple[dict, dict[str, BitMap]]:
    """The ImpactAssessed of a directive and action, and its chunks folded into per-model sets."""

    def mine(events: list) -> list:
        return [e for e in events if e.get("directive_id") == directive and e.get("action") == action]

    def complete(events: list) -> bool:
        heads = [e for e in mine(events) if e["type"] == "ImpactAssessed"]
        return (
            bool(heads)
            and len({e["chunk"] for e in mine(events) if e["type"] == "AffectedSetChunk"}) == heads[0]["chunks"]
        )

    events = mine(await read_until(bootstrap, IMPACT.name, IMPACT.partitions, complete))
    head = next(e for e in events if e["type"] == "ImpactAssessed")
    sets = {m: BitMap() for m in head["affected_by_model"]}
    for chunk in (e for e in events if e["type"] == "AffectedSetChunk"):
        sets[chunk["model"]] |= decode_bitmap(chunk["users"])
    return head, sets


async def registry_at(bootstrap: str, offsets: dict[str, int]) -> dict[int, UserUpserted]:
    """The oracle's registry: every valid record below the recorded offsets, last one per user, tombstones delete."""
    ends = {int(p): o for p, o in offsets.items()}
    records = [
        r async for r in records_to_end(KafkaSettings(bootstrap=bootstrap), USERS, "tests-impact-registry", until=ends)
    ]
    people: dict[int, UserUpserted] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            people.pop(int(record.key), None)
            continue
        try:
            person = UserUpserted.model_validate_json(record.value)
        except ValueError:
            continue
        if str(person.user_id).encode() == record.key:
            people[person.user_id] = person
    return people


def oracle(people: dict[int, UserUpserted], selector: dict, unknown: str = "restrict") -> BitMap:
    """The users the per-user oracle (devtools.registry.oracle) says a directive covers."""
    return BitMap(affected_users(selector, people.values(), unknown))


DEAD_LETTERS = dead_letter_topic("impact")


def settings_for(bootstrap: str, state_dir: Path, **overrides: object) -> ImpactSettings:
    return ImpactSettings(
        kafka=KafkaSettings(bootstrap=bootstrap), state_dir=state_dir, http_port=0, snapshot_interval_s=0, **overrides
    )


async def end_offsets(bootstrap: str, topics: tuple = ALL_TOPICS) -> dict[tuple[str, int], int]:
    """Every partition's end offset of these topics."""
    settings = KafkaSettings(bootstrap=bootstrap)
    return {(t.name, p): o for t in topics for p, o in (await topic_end_offsets(settings, t, "tests")).items()}


async def impact_events(bootstrap: str, directive: str, done) -> list[dict]:
    """The impact events of one directive, read until done(events of that directive)."""

    def mine(seen: list) -> list:
        return [e for e in seen if e.get("directive_id") == directive]

    return mine(await read_until(bootstrap, IMPACT.name, IMPACT.partitions, lambda seen: done(mine(seen))))


async def passed_marker(bootstrap: str, producer, unique: str, name: str) -> list[dict]:
    """Issue a marker directive and wait for its assessment: the service processed everything sent before it."""
    marker = f"{unique}-{name}"  # covers no one: directives stay active for the whole session
    nobody = {"kind": "organisation", "any_of": [f"org-{marker}"]}
    await send_directive(producer, issued(marker, 1, nobody, ["fable-5"]))
    return await read_until(
        bootstrap, IMPACT.name, IMPACT.partitions, lambda seen: any(e.get("directive_id") == marker for e in seen)
    )


async def lifted(bootstrap: str, producer, directive: str, revision: int = 1) -> None:
    """Lift a directive a test issued over the shared registry, so later tests' lifts are not netted against it."""
    await send_directive(producer, DirectiveLifted(producer="test", directive_id=directive, revision=revision))
    await assessment_of(bootstrap, directive, "lift")


@pytest.fixture
async def to_lift(service, producer, bootstrap: str) -> list[tuple[str, int]]:
    """(directive, revision) pairs a test leaves active; lifted after the test while its service still runs."""
    pending: list[tuple[str, int]] = []
    yield pending
    for directive, revision in pending:
        await lifted(bootstrap, producer, directive, revision)


async def until(condition, what: str) -> None:
    """Poll a condition on the service's state (it changes just after the messages are published)."""
    await eventually(condition, what, TIMEOUT_S, interval=0.05)


def deltas_of(events: list[dict], directive: str) -> list[dict]:
    return [e for e in events if e.get("directive_id") == directive and e["type"] == "AffectedSetDelta"]


def removed_ids(deltas: list[dict]) -> BitMap:
    return BitMap.union(BitMap(), *(decode_bitmap(d["removed"]) for d in deltas))


def added_ids(deltas: list[dict]) -> BitMap:
    return BitMap.union(BitMap(), *(decode_bitmap(d["added"]) for d in deltas))


def letters_for(events: list[dict], marker: bytes) -> list[dict]:
    """Dead letters of the registry whose original value contains the marker."""
    return [
        e
        for e in events
        if e.get("topic") != DIRECTIVES.name and e.get("value_b64") and marker in base64.b64decode(e["value_b64"])
    ]
