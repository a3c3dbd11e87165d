"""Status events caused by acks go out without holding the consumer; the outbox covers a refused one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.enforcement.app import EnforcementService, build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.serving import HeldDirective
from tests.unit.enforcement.scenario import SETS, applied, assessment, core, feed, heartbeat

MODELS = sorted(SETS)


class Broker:
    """Stands in for a publisher: the test decides when (and whether) the broker acknowledges."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.sent: list[str] = []

    async def publish(self, message: Any, *, correlation_id: str, **_: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((correlation_id, future))
        self.sent.append(correlation_id)
        return future

    def settle(self, error: Exception | None = None) -> None:
        for _, future in self.pending:
            future.set_exception(error) if error else future.set_result(None)
        self.pending.clear()


@pytest.fixture
def service(tmp_path: Path):
    service = build(EnforcementSettings(state_dir=tmp_path))  # its store under tmp_path/enforcement
    coordinator = core()
    assessed, chunks = assessment()
    feed(coordinator, [heartbeat("us-east", *MODELS), assessed, *chunks])
    service.core, service._backlog = coordinator, False
    service.commands, service.status = Broker(), Broker()
    yield service
    service.store.close()


def _ack(service: EnforcementService):
    """us-east acknowledging D-1 with the digest enforcement expects of it."""
    return applied("us-east", service.core.rollouts[("D-1", 1, "restrict")].clusters["us-east"].expected_digest)


def _outbox_ids(service: EnforcementService) -> list[str]:
    return [entry.message.event_id for entry in service.store.outbox()]


async def test_an_acks_status_event_does_not_hold_the_consumer_and_leaves_the_outbox_once_acknowledged(
    service: EnforcementService,
) -> None:
    await service.handle(_ack(service))  # returns with the broker not answered yet
    events = [event for event, _ in service.status.pending]  # its progress and the verdict: one cluster
    assert [e.split(":")[4] for e in events] == ["progress", "enforced"] and _outbox_ids(service) == events
    service.status.settle()
    await asyncio.sleep(0.01)  # the producer futures, their gather, then its callback
    assert _outbox_ids(service) == [] and not service._backlog


async def test_a_status_event_the_broker_refused_is_published_again_from_the_outbox(
    service: EnforcementService,
) -> None:
    await service.handle(_ack(service))
    refused = [event for event, _ in service.status.pending]
    service.status.settle(RuntimeError("broker unavailable"))
    await asyncio.sleep(0.01)  # the producer futures, their gather, then its callback
    assert service._backlog and _outbox_ids(service) == refused

    held = {"D-1": HeldDirective(revision=1, digest=_ack(service).digest)}  # holding it: no drift, nothing re-sent
    handling = asyncio.create_task(service.handle(heartbeat("us-east", *MODELS, held=held)))
    while not service.status.pending:  # the backlog is published first, and this time waited for
        await asyncio.sleep(0.001)
    assert [event for event, _ in service.status.pending][: len(refused)] == refused and not handling.done()
    service.status.settle()
    await handling
    assert _outbox_ids(service) == [] and not service._backlog
