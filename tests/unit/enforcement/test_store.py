"""The SQLite store rebuilds the core after a restart and keeps unpublished messages in the outbox."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.enforcement.store import EnforcementStore
from shared.contracts.impact import AssessmentKey
from shared.contracts.set_copies import SetReference
from tests.unit.enforcement.scenario import SETS, applied, assessment, at, core, delta, heartbeat, held_digest, of_type


def run(coordinator, store, messages, now) -> tuple[list, list]:
    """Feed messages through the core and the store: (outbox entries, every command produced)."""
    handlers = {
        "ImpactAssessed": "on_assessed",
        "AffectedSetChunk": "on_chunk",
        "CommandApplied": "on_applied",
        "AgentHeartbeat": "on_heartbeat",
    }
    entries, commands = [], []
    for message in messages:
        outcome = getattr(coordinator, handlers[message.type])(message, now)
        entries += store.save(outcome, coordinator)
        commands += outcome.commands
    return entries, commands


def test_a_restarted_core_resumes_a_rollout_and_publishes_the_verdict(tmp_path: Path) -> None:
    store, first = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    entries, commands = run(first, store, [heartbeat("us-east", "fable-5"), assessed, *chunks], at(0))
    assert commands and not [e for e in entries if e.message.type == "RestrictCommand"]  # not kept in the outbox
    store.published([e.id for e in entries])
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
    entries, _ = run(coordinator, store, [heartbeat("us-east", "fable-5"), assessed, *chunks], at(0))
    store.published([entries[0].id])
    store.close()
    left = EnforcementStore(tmp_path).outbox()
    assert [e.message.event_id for e in left] == [e.message.event_id for e in entries[1:]]
    assert [e.body for e in left] == [e.body for e in entries[1:]]  # re-sent as the JSON first queued


def test_a_delta_is_logged_for_its_model_only_and_the_sets_survive_a_restart(tmp_path: Path) -> None:
    store, coordinator = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    run(coordinator, store, [heartbeat("us-east", "fable-5", "mythos-5"), assessed, *chunks], at(0))
    after = SETS["fable-5"] - BitMap([3])
    outcome = coordinator.on_delta(delta(1, "fable-5", BitMap(), BitMap([3]), after), at(1))
    assert [(d.key, d.model, d.seq) for d in outcome.deltas] == [(("D-1", 1, "restrict"), "fable-5", 1)]
    assert outcome.sets == set()
    store.save(outcome, coordinator)
    store.close()
    restarted = EnforcementStore(tmp_path).load(core())
    assert restarted.sets[("D-1", 1, "restrict")] == {"fable-5": after, "mythos-5": SETS["mythos-5"]}


def test_after_a_restart_every_unapplied_restriction_is_sent_again(tmp_path: Path) -> None:
    store, first = EnforcementStore(tmp_path), core()
    assessed, chunks = assessment()
    _, sent = run(
        first, store, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "mythos-5"), assessed, *chunks], at(0)
    )
    store.save(
        first.on_applied(applied("us-east", held_digest([c for c in sent if c.cluster_id == "us-east"])), at(1)), first
    )
    store.close()
    second = EnforcementStore(tmp_path).load(core())
    outcome = second.recover(at(2))
    assert {c.cluster_id for c in outcome.commands} == {"eu-west"}
    assert held_digest(outcome.commands) == outcome.commands[0].expected_digest
    assert {c.event_id.rsplit(":", 1)[1] for c in outcome.commands} == {"2"}  # a new attempt, a new event id


def test_where_a_set_copy_was_published_survives_a_restart_until_its_rollout_is_retired(tmp_path: Path) -> None:
    key = AssessmentKey("D-1", 1, "restrict")
    ref = SetReference(
        model="fable-5", version=2, partition=3, offsets=[40, 41], chunk_digests=["a" * 64, "b" * 64], digest="d"
    )
    store = EnforcementStore(tmp_path)
    store.place((key, "fable-5", 2), ref)
    store.close()
    reopened = EnforcementStore(tmp_path)
    assert reopened.placed() == {(key, "fable-5", 2): ref}
    reopened.forget_copies({key})
    assert reopened.placed() == {}
