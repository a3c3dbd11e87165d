"""Helpers shared by the impact integration tests (the service fixture and readers live in test_impact_service)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pyroaring import BitMap

from services.impact.settings import ImpactSettings
from shared.contracts.bitmaps import decode_bitmap
from shared.contracts.catalogue import ALL_TOPICS, DIRECTIVES, IMPACT, dead_letter_topic
from shared.runtime.settings import KafkaSettings
from shared.contracts.directives import DirectiveLifted
from tests.integration.test_impact_service import TIMEOUT_S, assessment_of, issued, read_until, send_directive

DEAD_LETTERS = dead_letter_topic("impact")


def settings_for(bootstrap: str, state_dir: Path, **overrides: object) -> ImpactSettings:
    return ImpactSettings(kafka=KafkaSettings(bootstrap=bootstrap), state_dir=state_dir, http_port=0,
                          snapshot_interval_s=0, **overrides)


async def end_offsets(bootstrap: str, topics: tuple = ALL_TOPICS) -> dict[tuple[str, int], int]:
    """Every partition's end offset of these topics."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


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
    return await read_until(bootstrap, IMPACT.name, IMPACT.partitions,
                            lambda seen: any(e.get("directive_id") == marker for e in seen))


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
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def deltas_of(events: list[dict], directive: str) -> list[dict]:
    return [e for e in events if e.get("directive_id") == directive and e["type"] == "AffectedSetDelta"]


def removed_ids(deltas: list[dict]) -> BitMap:
    return BitMap.union(BitMap(), *(decode_bitmap(d["removed"]) for d in deltas))


def added_ids(deltas: list[dict]) -> BitMap:
    return BitMap.union(BitMap(), *(decode_bitmap(d["added"]) for d in deltas))


def letters_for(events: list[dict], marker: bytes) -> list[dict]:
    """Dead letters of the registry whose original value contains the marker."""
    return [e for e in events if e.get("topic") != DIRECTIVES.name and e.get("value_b64")
            and marker in base64.b64decode(e["value_b64"])]
