"""What intake's view and arbiter take from the directive topic: only events signed by intake's keys, checked at the
record's time, so that a key retired since still vouches for what it signed before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.records import directive_of, record_time
from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveLifted
from shared.runtime.signing import KeySet, SignatureRefused, Signer

SIGNED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Record:
    value: bytes
    key: bytes = b"EXP-1"
    topic: str = DIRECTIVES.name
    timestamp: int = int(SIGNED_AT.timestamp() * 1000)
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def signed(signer: Signer, value: bytes) -> Record:
    headers = signer.headers(DIRECTIVES.name, b"EXP-1", value)
    return Record(value, headers=[(k, v.encode()) for k, v in headers.items()])


LIFT = DirectiveLifted(producer="intake", directive_id="EXP-1", revision=1, reason="done").model_dump_json().encode()


def test_an_event_signed_by_intake_is_read_and_an_unsigned_or_altered_one_refused_by_name() -> None:
    signer = Signer.generate("intake-1")
    keys = KeySet([signer.public()])
    event, problem = directive_of(signed(signer, LIFT), keys)
    assert problem is None and isinstance(event, DirectiveLifted)
    for record, reason in [
        (Record(LIFT), "unsigned"),
        (Record(LIFT.replace(b"EXP-1", b"EXP-2"), headers=signed(signer, LIFT).headers), "bad signature"),
        (signed(Signer.generate("intake-1"), LIFT), "bad signature"),  # another key under the same id
    ]:
        event, problem = directive_of(record, keys)
        assert event is None and isinstance(problem, SignatureRefused) and problem.reason == reason


def test_a_key_retired_since_vouches_for_what_it_signed_before_its_retire_time_only() -> None:
    signer = Signer.generate("intake-2025")
    keys = KeySet([signer.public(retire_at=SIGNED_AT + timedelta(days=1))])
    assert directive_of(signed(signer, LIFT), keys)[1] is None
    late = signed(signer, LIFT)
    late.timestamp = int((SIGNED_AT + timedelta(days=2)).timestamp() * 1000)
    event, problem = directive_of(late, keys)
    assert event is None and isinstance(problem, SignatureRefused) and problem.reason == "retired signing key"


def test_with_checks_off_a_record_is_only_parsed_and_garbage_is_refused() -> None:
    assert isinstance(directive_of(Record(LIFT), None)[0], DirectiveLifted)
    event, problem = directive_of(Record(b"{not json"), None)
    assert event is None and problem is not None


@pytest.mark.parametrize("timestamp", [-1, None])
def test_a_record_without_a_time_is_checked_at_the_present(timestamp: int | None) -> None:
    record = Record(LIFT)
    record.timestamp = timestamp  # type: ignore[assignment]
    assert record_time(record) is None
