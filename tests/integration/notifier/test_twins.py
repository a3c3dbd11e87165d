"""The notifier's wiring, one test body on both transports (FastStream's pattern): in memory (TestKafkaBroker, no
broker, runs under -m 'not kafka') and on the session's real broker (with_real).

Only the registry differs: it is read by a plain consumer, not a subscriber, so in memory its records are handed
to the feed as a batch, and on the real broker they are produced to the topic and the feed is started.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker, TestKafkaBroker

from devtools.observe import group_starts_at
from devtools.waiting import eventually
from services.notifier.app import NotifierService, build
from services.notifier.sink import OutboxSink
from shared.contracts.catalogue import NOTIFICATIONS, USERS
from shared.runtime.settings import KafkaSettings
from tests.integration.notifier.conftest import (
    assessment,
    confirmation,
    settings_for,
    topics_now,
    user,
    user_base,
)

JSON = {"content-type": "application/json"}  # as the services produce their records

Record = tuple[str, bytes, bytes]  # (topic, key, value)


@dataclass
class Wired:
    """The notifier with its broker under TestKafkaBroker, and what a test does on either transport."""

    notifier: NotifierService
    broker: KafkaBroker
    real: bool
    outbox: OutboxSink

    async def registry(self, users: list[Record]) -> None:
        """These users are in the registry and the notifier's view of it has read them."""
        if not self.real:
            batch = [_consumer_record(topic, key, value, offset) for offset, (topic, key, value) in enumerate(users)]
            await self.notifier.registry.take({TopicPartition(USERS.name, 0): batch}, {})
            return
        await self.publish(users)
        await self.notifier.registry.start()
        await eventually(lambda: self.notifier.registry.caught_up, "the registry view to catch up")

    async def publish(self, records: list[Record]) -> None:
        """Publish records through the broker in order (in memory each is handled before the next)."""
        for topic, key, value in records:
            await self.broker.publish(value, topic=topic, key=key, headers=JSON)

    def notices(self, directive: str) -> list[dict[str, Any]]:
        """The notices sent for this directive (the development email channel's lines)."""
        return [line for line in self.outbox.records() if line["directive_id"] == directive]

    def published(self, directive: str) -> list[dict[str, Any]]:
        """The messages the notifier published on notifications.v1 for this directive."""
        [publisher] = [p for p in self.broker.publishers if p.topic == NOTIFICATIONS.name]
        bodies = [call.args[0] for call in publisher.mock.call_args_list]
        return [m for m in bodies if isinstance(m, dict) and m.get("directive_id") == directive]


@pytest.fixture
async def wired(twin_kafka: KafkaSettings | None, tmp_path: Path, unique: str) -> AsyncIterator[Wired]:
    real = twin_kafka is not None
    settings = settings_for(twin_kafka.bootstrap if real else "127.0.0.1:9", tmp_path, f"notifier-twin-{unique}")
    if real:  # skip what earlier tests left on the topics (the crash test's 20,000 notices among them)
        await group_starts_at(twin_kafka.bootstrap, settings.group_id, await topics_now(twin_kafka.bootstrap))
    notifier = build(settings.model_copy(update={"registry_wait_s": 30.0}))
    try:
        async with TestKafkaBroker(notifier.broker, with_real=real) as broker:
            yield Wired(notifier, broker, real, OutboxSink(settings.outbox))
    finally:
        await notifier.registry.stop()
        await notifier.channels.close()
        notifier.close()


def _consumer_record(topic: str, key: bytes, value: bytes, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), [])


async def test_a_restriction_confirmed_on_every_cluster_notifies_exactly_its_recipients_once(
    wired: Wired, unique: str
) -> None:
    directive, base = f"TWIN-{unique}", user_base(unique)
    await wired.registry([user(base + i, f"twin{i}@example.com") for i in range(4)])
    sets = {"fable-5": [base, base + 1, base + 2], "mythos-5": [base + 2, base + 3, base + 4]}  # base+4: no record
    await wired.publish(assessment(directive, 1, "restrict", sets))
    await wired.publish([confirmation(directive, 1, "restrict")])

    await eventually(lambda: len(wired.notices(directive)) >= 4, "the restricted notices")
    assert {line["recipient"]: line["models"] for line in wired.notices(directive)} == {
        base: ["fable-5"],
        base + 1: ["fable-5"],
        base + 2: ["fable-5", "mythos-5"],
        base + 3: ["mythos-5"],
    }
    assert {(line["action"], line["revision"]) for line in wired.notices(directive)} == {("restricted", 1)}
    published = await eventually(lambda: _complete(wired.published(directive), 9), "the notification events")
    assert Counter(m["type"] for m in published) == {
        "NotificationRequested": 4,
        "NotificationDelivered": 4,
        "NotificationFailed": 1,
    }
    assert next(m for m in published if m["type"] == "NotificationFailed")["recipient"] == base + 4

    # The confirmation again tells no one twice; revision 2 after it marks that it was handled.
    await wired.publish([confirmation(directive, 1, "restrict")])
    await wired.publish(
        [*assessment(directive, 2, "restrict", {"fable-5": [base]}), confirmation(directive, 2, "restrict")]
    )
    await eventually(lambda: any(line["revision"] == 2 for line in wired.notices(directive)), "the marker notice")
    assert Counter((line["revision"], line["recipient"]) for line in wired.notices(directive)) == {
        (1, base): 1,
        (1, base + 1): 1,
        (1, base + 2): 1,
        (1, base + 3): 1,
        (2, base): 1,
    }


async def test_a_lift_confirmed_on_every_cluster_sends_restored_notices(wired: Wired, unique: str) -> None:
    directive, base = f"TWIN-LIFT-{unique}", user_base(unique)
    await wired.registry([user(base + i, f"back{i}@example.com") for i in range(2)])
    await wired.publish(assessment(directive, 1, "lift", {"fable-5": [base, base + 1], "mythos-5": [base]}))
    assert wired.notices(directive) == []  # the set alone tells no one: the clusters have not lifted yet
    await wired.publish([confirmation(directive, 1, "lift")])

    await eventually(lambda: len(wired.notices(directive)) >= 2, "the restored notices")
    assert {(line["recipient"], tuple(line["models"]), line["action"]) for line in wired.notices(directive)} == {
        (base, ("fable-5", "mythos-5"), "restored"),
        (base + 1, ("fable-5",), "restored"),
    }
    published = await eventually(lambda: _complete(wired.published(directive), 4), "the notification events")
    assert Counter(m["type"] for m in published) == {"NotificationRequested": 2, "NotificationDelivered": 2}


def _complete(messages: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    return messages if len(messages) >= count else None
