"""Publishing several messages: a window in flight at a time, in order, all acknowledged before returning."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.contracts.catalogue import IMPACT
from shared.runtime.broker import emit_all
from tests.unit.enforcement.scenario import assessment


class Publisher:
    """Notes what was handed over and how many were unacknowledged at that moment; acks later."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.records: list[tuple[Any, dict[str, str] | None]] = []
        self.pending: list[asyncio.Future] = []
        self.fail_at = fail_at

    async def publish(
        self,
        message: Any,
        *,
        key: bytes,
        no_confirm: bool,
        correlation_id: str,
        headers: dict[str, str] | None = None,
    ) -> asyncio.Future:
        assert no_confirm
        self.records.append((message, headers))
        self.pending = [f for f in self.pending if not f.done()]
        self.sent.append((correlation_id, key, len(self.pending)))
        future = asyncio.get_running_loop().create_future()
        number = len(self.sent)
        loop = asyncio.get_running_loop()
        if number == self.fail_at:
            loop.call_later(0.001, future.set_exception, RuntimeError("broker refused"))
        else:
            loop.call_later(0.001, future.set_result, None)
        self.pending.append(future)
        return future


async def test_messages_go_in_order_with_at_most_a_window_unacknowledged() -> None:
    assessed, chunks = assessment(ids_per_chunk=20)
    messages = [assessed, *chunks]
    publisher = Publisher()
    await emit_all(publisher, IMPACT, messages, window=4)
    assert [event for event, _, _ in publisher.sent] == [m.event_id for m in messages]
    assert {key for _, key, _ in publisher.sent} == {b"D-1"}
    assert max(outstanding for _, _, outstanding in publisher.sent) == 3 and len(messages) > 4
    assert all(f.done() for f in publisher.pending)


async def test_a_refused_message_fails_the_call() -> None:
    assessed, chunks = assessment(ids_per_chunk=20)
    with pytest.raises(RuntimeError, match="broker refused"):
        await emit_all(Publisher(fail_at=2), IMPACT, [assessed, *chunks], window=4)


async def test_each_message_goes_as_its_json_bytes_with_the_json_content_type() -> None:
    assessed, chunks = assessment(ids_per_chunk=20)
    publisher = Publisher()
    await emit_all(publisher, IMPACT, [assessed, *chunks], window=4)
    assert [value for value, _ in publisher.records] == [m.model_dump_json().encode() for m in [assessed, *chunks]]
    assert {headers["content-type"] for _, headers in publisher.records if headers} == {"application/json"}
    assert all(headers for _, headers in publisher.records)
