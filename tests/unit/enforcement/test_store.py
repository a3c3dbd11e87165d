"""The SQLite store rebuilds the core after a restart and keeps unpublished messages in the outbox."""

from __future__ import annotations

from pathlib import Path

from services.enforcement.store import EnforcementStore
from tests.unit.enforcement.scenario import SETS, applied, assessment, at, core, heartbeat, held_digest, of_type


def run(coordinator, store, messages, now):
    handlers = {"ImpactAssessed": "on_assessed", "AffectedSetChunk": "on_chunk",
                "CommandApplied": "on_applied", "AgentHeartbeat": "on_heartbeat"}
    entries = []
    for message in messages:
        entries += store.save(getattr(coordinator, handlers[message.type])(message, now), coordinator)
    return entries


def test_a_restarted_core_resumes_a_rollout_and_publishes_the_verdict(tmp_path: Path) -> None:
    store, first = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    entries = run(first, store, [heartbeat("us-east", "fable-5"), assessed, *chunks], at(0))
    commands = [m for _, _, m in entries if m.type == "RestrictCommand"]
    store.published([i for i, _, _ in entries])
    store.close()

    store = EnforcementStore(tmp_path)
    second = store.load(core())
    assert second.sets[("D-1", 1, "restrict")] == SETS
    assert second.clusters["us-east"].models == ["fable-5"]
    outcome = second.on_applied(applied("us-east", held_digest(commands)), at(1))
    assert of_type(outcome.events, "DirectiveEnforced")


def test_parts_of_an_incomplete_assessment_survive_a_restart(tmp_path: Path) -> None:
    store, first = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    run(first, store, [heartbeat("us-east", "fable-5"), assessed, *chunks[:-1]], at(0))
    store.close()
    second = EnforcementStore(tmp_path).load(core())
    assert second.on_chunk(chunks[-1], at(1)).commands


def test_messages_not_yet_published_stay_in_the_outbox(tmp_path: Path) -> None:
    store, coordinator = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    entries = run(coordinator, store, [heartbeat("us-east", "fable-5"), assessed, *chunks], at(0))
    store.published([entries[0][0]])
    store.close()
    left = EnforcementStore(tmp_path).outbox()
    assert [m.event_id for _, _, m in left] == [m.event_id for _, _, m in entries[1:]]
