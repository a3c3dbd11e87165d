"""The shared dead-letter middleware on the audit's batches, with a fake store that always fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.audit.batch_fence import middleware_for
from shared.contracts.deadletter import DeadLetter
from shared.runtime.deadletters import dead_letter_middleware


@dataclass
class Published:
    """A fake broker that keeps what is published."""

    messages: list[tuple[Any, str]] = field(default_factory=list)

    async def publish(self, message: Any, *, topic: str, key: bytes) -> None:
        self.messages.append((message, topic))


@dataclass
class Batch:
    raw_message: tuple


def consumed(topic: str, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value or b""), [("h", b"\xff")])


async def run(records: tuple, broker: Published, batches: bool = True) -> int:
    calls = 0

    async def store_fails(_: Any) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk I/O error (simulated)")

    middleware_class = dead_letter_middleware("audit", backoff_s=0, batches=batches)
    middleware = middleware_for(middleware_class, Batch(records), broker)
    await middleware.consume_scope(store_fails, Batch(records))
    return calls


async def test_a_batch_the_store_rejects_is_retried_then_dead_lettered_record_by_record() -> None:
    broker = Published()
    calls = await run(
        (consumed("compliance.directives.v1", 4, b"\x00poison"), consumed("identity.users.v1", 9, None)), broker
    )
    assert calls == 3
    letters: list[DeadLetter] = [m for m, topic in broker.messages if topic == "dlq.audit.v1"]
    assert [(d.topic, d.offset, d.value_b64) for d in letters] == [
        ("compliance.directives.v1", 4, "AHBvaXNvbg=="),
        ("identity.users.v1", 9, None),
    ]
    assert all("OSError" in d.reason and d.headers == {"h": "/w=="} for d in letters)


async def test_a_batch_holding_the_services_own_dead_letters_is_redelivered_not_buried_again() -> None:
    broker = Published()
    with pytest.raises(OSError):
        await run((consumed("compliance.directives.v1", 1, b"{}"), consumed("dlq.audit.v1", 0, b"{}")), broker)
    assert broker.messages == []


async def test_without_batch_dead_lettering_a_failing_batch_is_redelivered() -> None:
    broker = Published()
    with pytest.raises(OSError):
        await run((consumed("identity.users.v1", 1, b"{}"),), broker, batches=False)
    assert broker.messages == []
