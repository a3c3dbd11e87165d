"""ClusterSynced: a not-ready agent hears that everything in force for its cluster was sent before it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.enforcement.app import PUBLISH_WINDOW, build
from services.enforcement.settings import EnforcementSettings
from shared.contracts.catalogue import COMMANDS, key_of
from shared.contracts.serving import HeldDirective
from tests.unit.enforcement.scenario import (
    SETS,
    applied,
    assessment,
    at,
    core,
    failed,
    feed,
    heartbeat,
    held_digest,
    to,
)

MODELS = sorted(SETS)


def not_ready(cluster: str, *models: str):
    return heartbeat(cluster, *models).model_copy(update={"ready": False})


def restricting(**overrides):
    """A core with D-1 in force on us-east."""
    coordinator = core(**overrides)
    assessed, chunks = assessment()
    feed(coordinator, [heartbeat("us-east", *MODELS), assessed, *chunks])
    return coordinator


def test_a_not_ready_new_cluster_gets_its_restrictions_then_a_marker_for_that_heartbeat() -> None:
    coordinator, beat = restricting(), not_ready("eu-west", *MODELS)
    outcome = coordinator.on_heartbeat(beat, at(5))
    assert {c.type for c in outcome.commands} == {"RestrictCommand"} and to(outcome.commands, "eu-west")
    [marker] = outcome.markers
    assert marker.type == "ClusterSynced" and marker.cluster_id == "eu-west"
    assert marker.heartbeat_event_id == beat.event_id == marker.causation_id
    assert marker.event_id == f"synced:eu-west:{beat.event_id}" and marker.producer == "enforcement"
    assert key_of(COMMANDS, marker) == b"eu-west"


def test_a_not_ready_cluster_already_holding_everything_gets_only_a_marker() -> None:
    coordinator = restricting()
    outcome = coordinator.on_heartbeat(not_ready("us-east", *MODELS), at(5))
    assert outcome.commands == [] and [m.cluster_id for m in outcome.markers] == ["us-east"]


def test_a_ready_heartbeat_gets_no_marker() -> None:
    coordinator = restricting()
    assert coordinator.on_heartbeat(heartbeat("us-east", *MODELS), at(5)).markers == []
    late = coordinator.on_heartbeat(heartbeat("eu-west", *MODELS), at(6))
    assert late.commands and late.markers == []


def test_the_same_heartbeat_redelivered_gives_the_same_marker_id() -> None:
    coordinator, beat = restricting(), not_ready("eu-west", *MODELS)
    first = coordinator.on_heartbeat(beat, at(5)).markers
    again = coordinator.on_heartbeat(beat, at(9)).markers
    assert [m.event_id for m in first] == [m.event_id for m in again]


def test_a_marker_id_stays_within_the_envelope_bound_for_a_long_heartbeat_id() -> None:
    beat = not_ready("eu-west", *MODELS).model_copy(update={"event_id": "b" * 200})
    [marker] = restricting().on_heartbeat(beat, at(5)).markers
    assert len(marker.event_id) <= 200 and marker.heartbeat_event_id == beat.event_id


class SlowBroker:
    """Stands in for a publisher: hands back futures the 'broker' acknowledges later, out of order."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log, self.count = log, 0

    async def publish(
        self, message: Any, *, key: bytes, no_confirm: bool, correlation_id: str | None = None, **_: Any
    ) -> asyncio.Future:
        assert no_confirm
        self.count += 1
        # A command's event id (outbox entries go as JSON bytes); a set copy's chunk by its key and number.
        name = correlation_id or f"set:{key.decode()}:{self.count}"
        self.log.append(("sent", name))
        done = asyncio.get_running_loop().create_future()
        offset = self.count

        def ack() -> None:
            self.log.append(("acked", name))
            done.set_result(SimpleNamespace(offset=offset))

        asyncio.get_running_loop().call_later(0.03 if self.count % 3 == 0 else 0.001, ack)
        return done


@pytest.fixture
def service(tmp_path: Path):
    service = build(EnforcementSettings(state_dir=tmp_path))  # its store under tmp_path/enforcement
    service.core = restricting()
    service.copies.state = service.core.state
    service.copies.ids_per_chunk = 20  # many chunks of the set copies
    service._backlog = False
    log: list[tuple[str, str]] = []
    service.commands, service.status, service.sets = SlowBroker(log), SlowBroker(log), SlowBroker(log)
    yield service, log
    service.store.close()


async def test_the_marker_is_published_after_the_broker_acknowledged_every_catch_up_command(service) -> None:
    service, log = service
    await service.handle(not_ready("eu-west", *MODELS))
    sent = [event for what, event in log if what == "sent"]
    commands = [e for e in sent if e.startswith("cmd:eu-west:") or e.startswith("set:")]
    [marker] = [e for e in sent if e.startswith("synced:eu-west:")]
    assert len(commands) > PUBLISH_WINDOW
    sent_at = log.index(("sent", marker))
    assert all(log.index(("acked", c)) < sent_at for c in commands)
    assert ("acked", marker) in log


async def test_a_ready_heartbeat_publishes_no_marker(service) -> None:
    service, log = service
    await service.handle(heartbeat("eu-west", *MODELS))
    assert any(e.startswith("cmd:eu-west:") for _, e in log)
    assert not any(e.startswith("synced:") for _, e in log)


async def test_no_marker_while_restrictions_wait_for_a_re_send(service) -> None:
    service, log = service
    service._resend = True  # an earlier publish of restrict commands failed
    await service.handle(not_ready("eu-west", *MODELS))
    assert not any(e.startswith("synced:") for _, e in log)


def test_an_applied_cluster_whose_agent_lost_its_state_gets_the_restriction_again_before_the_marker() -> None:
    coordinator = core()
    assessed, chunks = assessment()
    commands, _ = feed(coordinator, [heartbeat("us-east", *MODELS), assessed, *chunks])
    digest = held_digest(to(commands, "us-east"))
    feed(coordinator, [applied("us-east", digest)], now=at(1))
    track = coordinator.rollouts[("D-1", 1, "restrict")].clusters["us-east"]
    assert track.state == "applied"

    wiped = coordinator.on_heartbeat(not_ready("us-east", *MODELS), at(5))  # same cluster id, nothing held
    assert held_digest(to(wiped.commands, "us-east")) == digest and [m.cluster_id for m in wiped.markers] == ["us-east"]
    assert track.state == "pending"

    holding = heartbeat("us-east", *MODELS, held={"D-1": HeldDirective(revision=1, digest=digest)})
    intact = coordinator.on_heartbeat(holding.model_copy(update={"ready": False}), at(6))
    assert intact.commands == [] and [m.cluster_id for m in intact.markers] == ["us-east"]
    assert track.state == "applied"  # the held digest counts as the acknowledgement


def test_the_cluster_registry_keeps_what_each_heartbeat_reports_it_applied() -> None:
    coordinator = restricting()
    beat = heartbeat("eu-west", *MODELS).model_copy(update={"offsets": {5: 88}, "region": "eu-west-1"})
    outcome = coordinator.on_heartbeat(beat, at(5))
    known = coordinator.clusters["eu-west"]
    assert known.offsets == {5: 88} and known.region == "eu-west-1" and outcome.clusters == {"eu-west"}
    assert coordinator.on_heartbeat(beat, at(6)).clusters == set()  # nothing new: nothing to persist


async def test_a_set_copy_an_agent_cannot_use_is_published_afresh_at_the_next_send(service) -> None:
    service, log = service
    await service.handle(heartbeat("eu-west", *MODELS))
    key = ("D-1", 1, "restrict")
    first = {c: r for c, r in service.copies.placed.items() if c[0] == key}
    assert first and set(service.store.placed()) == set(first)
    refusal = failed("eu-west", "refused: set copy of fable-5, chunk 0 (partition 1, offset 9): offset 9 is not on it")
    await service.handle(refusal)
    assert not service.copies.placed and not service.store.placed()
    await service.handle(failed("eu-west", "refused: bad signature (key id 'x')"))  # other refusals keep nothing new
    await service._commit(service.core.recover(at(60)))
    again = {c: r for c, r in service.copies.placed.items() if c[0] == key}
    assert set(again) == set(first) and all(again[c].offsets != first[c].offsets for c in again)
