"""Fixtures and helpers of the notifier's integration tests: start it, produce real messages, read topics back."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from devtools.mailbox import Mailbox
from devtools.messages import UNCHECKED, directive_enforced, impact_assessment, user_upserted
from devtools.observe import group_starts_at, topics_end
from services.notifier.app import NotifierService, build
from services.notifier.settings import NotifierSettings
from shared.contracts.catalogue import BY_NAME
from shared.contracts.users import user_key
from shared.runtime.kafka import consuming, producing, records_to_end
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
    return await topics_end(bootstrap, BY_NAME["compliance.impact.v1"], BY_NAME["compliance.enforcement.v1"])


async def started(settings: NotifierSettings) -> NotifierService:
    notifier = build(settings)
    try:
        await notifier.start()
    except BaseException:
        await notifier.stop()
        raise
    return notifier


async def mailing(bootstrap: str, state: Path, unique: str, box: Mailbox, replay: bool = False) -> NotifierSettings:
    """Settings of a notifier sending to `box`, its group (with `replay`, the replay's group too) starting at the
    topics' end."""
    settings = settings_for(bootstrap, state, f"notifier-{unique}").model_copy(update=box.settings())
    since = await topics_now(bootstrap)
    for group in [settings.group_id, f"{settings.group_id}-replay"] if replay else [settings.group_id]:
        await group_starts_at(bootstrap, group, since)
    return settings


async def replaying(settings: NotifierSettings) -> NotifierService:
    """A notifier on the same state and ledger reading everything again, in the replay's group."""
    return await started(settings.model_copy(update={"group_id": f"{settings.group_id}-replay"}))


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send (topic, key, value) records in order and wait for every ack."""
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-notifier-records") as producer:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)


def as_record(topic: str, key: str, message: Any) -> tuple[str, bytes, bytes]:
    return topic, key.encode(), message.model_dump_json().encode()


def user(
    user_id: int,
    email: str,
    entitlements: Iterable[str] = ("fable-5", "mythos-5"),
    locale: str = "fr",
    **fields: Any,
) -> tuple[str, bytes, bytes]:
    """A French consumer's registry record (`fields`: any other field); a notice names only models the recipient
    holds."""
    message = user_upserted(user_id, email, entitlements, locale=locale, **fields)
    return "identity.users.v1", user_key(user_id), message.model_dump_json().encode()


def assessment(
    directive: str, revision: int, action: str, sets: dict[str, list[int]], **amendment: Any
) -> list[tuple[str, bytes, bytes]]:
    """Impact's records of an assessment (devtools.messages.impact_assessment: `amendment` as it takes it)."""
    messages = impact_assessment(directive, revision, action, sets, **amendment)
    return [as_record("compliance.impact.v1", directive, message) for message in messages]


def confirmation(directive: str, revision: int, action: str, digest: str = UNCHECKED) -> tuple[str, bytes, bytes]:
    """Enforcement's record confirming that eu-1 applied the revision."""
    confirmed = directive_enforced(directive, revision, action, clusters=["eu-1"], digest=digest)
    return as_record("compliance.enforcement.v1", directive, confirmed)


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
