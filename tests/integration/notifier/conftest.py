"""Fixtures and helpers of the notifier's integration tests: start it, produce real messages, read topics back."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from pyroaring import BitMap

from services.notifier.app import NotifierService, build
from services.notifier.settings import NotifierSettings
from shared.contracts.bitmaps import encode_bitmap, scope_digest
from shared.contracts.catalogue import BY_NAME
from shared.contracts.directives import DirectiveScope
from shared.contracts.enforcement import ClusterProgress, DirectiveEnforced
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from shared.contracts.users import UserUpserted, user_key
from shared.runtime.kafka import consuming, end_offsets, producing, records_to_end
from shared.runtime.settings import KafkaSettings

TIMEOUT_S = 60.0


def user_base(unique: str) -> int:
    """A block of 1000 user ids no other test of the session uses."""
    return (zlib.crc32(unique.encode()) % 1_000_000) * 1000


def settings_for(bootstrap: str, state: Path, group: str) -> NotifierSettings:
    return NotifierSettings(
        kafka=KafkaSettings(bootstrap=bootstrap),
        state_dir=state,
        group_id=group,
        registry_wait_s=5.0,
        batch_size=2,
        publish_group=3,
        email_channel="outbox",  # these tests read the development channel; test_smtp_crash.py uses SMTP
    )


async def topics_now(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offsets of the topics the notifier's group reads: where a test's own messages will begin."""
    settings = KafkaSettings(bootstrap=bootstrap)
    ends: dict[TopicPartition, int] = {}
    for topic in (BY_NAME["compliance.impact.v1"], BY_NAME["compliance.enforcement.v1"]):
        for partition, offset in (await end_offsets(settings, topic, "tests-notifier-start")).items():
            ends[TopicPartition(topic.name, partition)] = offset
    return ends


async def group_starts_at(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit these offsets for a group not started yet: it skips what earlier tests left on the topics
    (a fresh group otherwise replays every directive of the session, and has to tell all of them first)."""
    async with consuming(KafkaSettings(bootstrap=bootstrap), "tests-notifier-group", group_id=group) as consumer:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)


async def started(settings: NotifierSettings) -> NotifierService:
    notifier = build(settings)
    try:
        await notifier.start()
    except BaseException:
        await notifier.stop()
        raise
    return notifier


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send (topic, key, value) records in order and wait for every ack."""
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-notifier-records") as producer:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)


def as_record(topic: str, key: str, message: Any) -> tuple[str, bytes, bytes]:
    return topic, key.encode(), message.model_dump_json().encode()


def user(user_id: int, email: str) -> tuple[str, bytes, bytes]:
    message = UserUpserted(
        producer="test",
        user_id=user_id,
        email=email,
        nationalities=["FR"],
        residence="FR",
        account_type="consumer",
        entitlements=["fable-5", "mythos-5"],  # a notice names only models the recipient holds
        locale="fr",
    )
    return "identity.users.v1", user_key(user_id), message.model_dump_json().encode()


def assessment(
    directive: str,
    revision: int,
    action: str,
    sets: dict[str, list[int]],
    *,
    amended_from: int | None = None,
    added: dict[str, list[int]] | None = None,
    removed: dict[str, list[int]] | None = None,
    model_digests: dict[str, str] | None = None,
) -> list[tuple[str, bytes, bytes]]:
    """An ImpactAssessed and one chunk per model, as the impact service publishes them; an amendment's
    "added" then "removed" chunks (one per model) follow the whole ones."""
    diff = [("added", m, u) for m, u in sorted((added or {}).items())]
    diff += [("removed", m, u) for m, u in sorted((removed or {}).items())]
    scope = DirectiveScope.model_validate({"models": sorted(sets), "selector": {"kind": "everyone"}})
    head = ImpactAssessed(
        producer="test",
        correlation_id=directive,
        directive_id=directive,
        revision=revision,
        action=action,
        scope=scope,
        affected_by_model={m: len(u) for m, u in sets.items()},
        affected_users=len(set().union(*sets.values())),
        model_digests=model_digests or {m: "x" for m in sets},
        digest=scope_digest(model_digests) if model_digests else "x",
        registry_offsets={},
        chunks=len(sets),
        amended_from=amended_from,
        diff_chunks=len(diff),
    )
    records = [as_record("compliance.impact.v1", directive, head)]
    for index, model in enumerate(sorted(sets)):
        chunk = AffectedSetChunk(
            producer="test",
            correlation_id=directive,
            directive_id=directive,
            revision=revision,
            action=action,
            model=model,
            chunk=index,
            chunks=len(sets),
            users=encode_bitmap(BitMap(sets[model])),
        )
        records.append(as_record("compliance.impact.v1", directive, chunk))
    for index, (part, model, users) in enumerate(diff, start=len(sets)):
        chunk = AffectedSetChunk(
            producer="test",
            correlation_id=directive,
            directive_id=directive,
            revision=revision,
            action=action,
            model=model,
            chunk=index,
            chunks=len(sets) + len(diff),
            users=encode_bitmap(BitMap(users)),
            part=part,
        )
        records.append(as_record("compliance.impact.v1", directive, chunk))
    return records


def enforced(directive: str, revision: int, action: str, digest: str = "x") -> DirectiveEnforced:
    return DirectiveEnforced(
        producer="test",
        correlation_id=directive,
        directive_id=directive,
        revision=revision,
        action=action,
        digest=digest,
        clusters={"eu-1": ClusterProgress(state="applied")},
        ack_latency_s={"eu-1": 0.1},
    )


async def read_until(
    bootstrap: str, topic: str, keep: Callable[[Any], bool], done: Callable[[list[Any]], bool]
) -> list[Any]:
    """Read a topic from its beginning, keep matching records (key, json value), until done(kept)."""
    kept: list[Any] = []
    async with consuming(KafkaSettings(bootstrap=bootstrap), f"tests-read-{topic}") as consumer:
        parts = [TopicPartition(topic, p) for p in range(BY_NAME[topic].partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_S
        while not done(kept) and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    item = (record.key, json.loads(record.value) if record.value else None)
                    if keep(item):
                        kept.append(item)
        return kept


async def read_all(bootstrap: str, topic: str, keep: Callable[[Any], bool]) -> list[Any]:
    """Every matching record (key, json value) up to the topic's end at the time of the call."""
    records = records_to_end(KafkaSettings(bootstrap=bootstrap), BY_NAME[topic], f"tests-read-{topic}")
    items = [(r.key, json.loads(r.value) if r.value else None) async for r in records]
    return [item for item in items if keep(item)]
