"""The cause an assessment or a command carries: copied from its directive event, bounded, optional (older
messages parse), and covered by the record's signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.contracts.catalogue import COMMANDS
from shared.contracts.directives import CAUSED_BY_EXAMPLE, MAX_REGISTRY_PRODUCERS, CausedBy, DirectiveIssued
from shared.contracts.impact import AffectedSetDelta, ImpactAssessed
from shared.contracts.limits import SUBJECT_CHARS
from shared.contracts.serving import DeltaCommand, LiftCommand, RestrictCommand
from shared.runtime.broker import emit
from shared.runtime.record_signing import verify_record
from shared.runtime.signing import KeySet, SignatureRefused, Signer
from tests.unit.shared.test_record_signing import FakePublisher, Record

NOW = datetime(2026, 12, 7, tzinfo=UTC)
CARRIERS = [ImpactAssessed, AffectedSetDelta, RestrictCommand, DeltaCommand, LiftCommand]


def issued(**accountable) -> DirectiveIssued:
    return DirectiveIssued(
        producer="intake",
        directive_id="EXP-1",
        revision=2,
        title="Export control",
        scope={"models": ["fable-5"], "selector": {"kind": "everyone"}},
        **accountable,
    )


def test_the_cause_of_an_approved_directive_names_its_proposal_proposer_and_approvers() -> None:
    event = issued(proposal_id="p-0123456789ab", proposed_by="alice@example.com", approved_by=["bob@example.com"])
    cause = CausedBy.of(event)
    assert cause is not None
    assert (cause.proposal_id, cause.proposed_by, cause.approved_by, cause.emergency) == (
        "p-0123456789ab",
        "alice@example.com",
        ["bob@example.com"],
        False,
    )


def test_the_cause_of_an_emergency_directive_keeps_the_flag_and_reason() -> None:
    cause = CausedBy.of(issued(proposed_by="erin@example.com", emergency=True, emergency_reason="court order"))
    assert cause is not None and cause.emergency and cause.emergency_reason == "court order"


def test_a_directive_event_from_before_four_eyes_has_no_cause() -> None:
    assert CausedBy.of(issued()) is None


@pytest.mark.parametrize("model", CARRIERS, ids=lambda m: m.__name__)
def test_the_cause_is_optional_and_documented_with_an_example(model) -> None:
    schema = model.model_json_schema()
    assert "caused_by" not in schema.get("required", [])
    example = schema["properties"]["caused_by"]["examples"][0]
    assert CausedBy.model_validate(example) == CausedBy.model_validate(CAUSED_BY_EXAMPLE)


def test_a_command_from_before_causes_parses_without_one() -> None:
    old = {
        "type": "LiftCommand",
        "producer": "enforcement",
        "cluster_id": "us-east",
        "directive_id": "D",
        "revision": 1,
    }
    assert LiftCommand.model_validate_json(json.dumps(old)).caused_by is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"proposed_by": "a" * (SUBJECT_CHARS + 1)}, "proposed_by"),
        ({"approved_by": [f"u{i}" for i in range(10)]}, "approved_by"),
        ({"registry_producers": [f"p{i}" for i in range(MAX_REGISTRY_PRODUCERS + 1)]}, "registry_producers"),
        ({"proposed_by": "erin", "emergency": True}, "emergency_reason"),
        ({"proposed_by": "alice", "unexpected": 1}, "unexpected"),
    ],
)
def test_an_oversized_or_incomplete_cause_is_refused_naming_the_field(fields: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        LiftCommand(producer="enforcement", cluster_id="us-east", directive_id="D", revision=1, caused_by=fields)


def test_registry_producers_are_distinct_sorted_and_bounded() -> None:
    cause = CausedBy.registry(["sync-b", "sync-a", "sync-b", "", *(f"z{i}" for i in range(9))])
    assert cause is not None and cause.registry_producers == ["sync-a", "sync-b", "z0", "z1"]
    assert CausedBy.registry([]) is None


async def test_the_signature_covers_the_cause() -> None:
    signer = Signer.generate("enforcement-1")
    keys = KeySet([signer.public()])
    command = LiftCommand(
        producer="enforcement",
        cluster_id="us-east",
        directive_id="D",
        revision=1,
        caused_by=CausedBy(proposed_by="alice@example.com", approved_by=["bob@example.com"]),
    )
    publisher = FakePublisher(COMMANDS.name)
    await emit(publisher, COMMANDS, command, signer=signer)
    record = publisher.records[0]
    assert verify_record(keys, record, NOW) == "enforcement-1"
    assert LiftCommand.model_validate_json(record.value).caused_by == command.caused_by
    other = record.value.replace(b"bob@example.com", b"eve@example.com")
    with pytest.raises(SignatureRefused, match="bad signature"):
        verify_record(keys, Record(record.topic, record.key, other, record.headers), NOW)
