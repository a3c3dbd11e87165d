"""Every command names who caused it: the assessment's cause on each restrict chunk and lift, even after a
restart; a registry delta's producers on its delta commands."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.enforcement.store import EnforcementStore
from shared.contracts.directives import CausedBy
from tests.unit.enforcement.scenario import (
    SETS,
    applied,
    assessment,
    at,
    core,
    delta,
    feed,
    heartbeat,
    held_digest,
    placed,
)

ALICE_AND_BOB = CausedBy(proposal_id="p-0123456789ab", proposed_by="alice@example.com", approved_by=["bob@example.com"])
ERIN_ALONE = CausedBy(proposed_by="erin@example.com", emergency=True, emergency_reason="court order served at 02:00")


def caused(cause: CausedBy | None, **kwargs):
    assessed, chunks = assessment(**kwargs)
    return assessed.model_copy(update={"caused_by": cause}), chunks


def test_every_restrict_command_for_every_cluster_names_the_proposer_and_approver() -> None:
    coordinator = core(ids_per_chunk=100)
    assessed, chunks = caused(ALICE_AND_BOB)
    commands, _ = feed(
        coordinator, [heartbeat("us-east", "fable-5"), heartbeat("eu-west", "mythos-5"), assessed, *chunks]
    )
    assert {c.cluster_id for c in commands} == {"us-east", "eu-west"} and len(commands) == 2
    assert all(c.caused_by == ALICE_AND_BOB for c in placed(commands))


def test_a_lift_command_names_the_emergency_issuer_and_reason() -> None:
    coordinator = core()
    assessed, chunks = caused(ALICE_AND_BOB)
    restricted, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks])
    feed(coordinator, [applied("us-east", held_digest(restricted))], at(1))
    lift, lift_chunks = caused(ERIN_ALONE, action="lift")
    commands, _ = feed(coordinator, [lift, *lift_chunks], at(2))
    lifts = [c for c in commands if c.type == "LiftCommand"]
    assert lifts and all(c.caused_by == ERIN_ALONE for c in lifts)
    assert lifts[0].caused_by.emergency_reason == "court order served at 02:00"


def test_an_assessment_without_a_cause_sends_commands_without_one() -> None:
    coordinator = core()
    assessed, chunks = assessment()  # as from before causes were recorded
    commands, _ = feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks])
    assert commands and all(c.caused_by is None for c in commands)


def test_a_re_send_after_a_restart_still_names_the_cause(tmp_path: Path) -> None:
    store, first = EnforcementStore(tmp_path), core()
    assessed, chunks = caused(ALICE_AND_BOB)
    outcome = None
    for message in [heartbeat("us-east", "fable-5"), assessed, *chunks]:
        outcome = getattr(
            first, {"AgentHeartbeat": "on_heartbeat", "ImpactAssessed": "on_assessed"}.get(message.type, "on_chunk")
        )(message, at(0))
        store.save(outcome, first)
    store.close()
    second = EnforcementStore(tmp_path).load(core())
    resent = second.recover(at(2)).commands
    assert resent and all(c.caused_by == ALICE_AND_BOB for c in resent)


def test_a_delta_command_names_the_registry_producer_of_its_delta() -> None:
    coordinator = core()
    assessed, chunks = caused(ALICE_AND_BOB)
    feed(coordinator, [heartbeat("us-east", "fable-5"), assessed, *chunks])
    after = SETS["fable-5"] | BitMap([9000])
    change = delta(1, "fable-5", BitMap([9000]), BitMap(), after).model_copy(
        update={"caused_by": CausedBy.registry(["identity-sync"])}
    )
    commands, _ = feed(coordinator, [change], at(1))
    assert [c.type for c in commands] == ["DeltaCommand"]
    assert commands[0].caused_by == CausedBy(registry_producers=["identity-sync"])
