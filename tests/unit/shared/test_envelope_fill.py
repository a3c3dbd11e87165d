"""Every service fills a message's envelope through one helper: fresh ids by default, given ids kept."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contracts.audit import AuditCheckpoint
from shared.contracts.envelope import envelope

MOMENT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _checkpoint(**fields: object) -> AuditCheckpoint:
    return AuditCheckpoint(**fields, ledger="L", entries=1, head_hash="0" * 64)


def test_without_an_event_id_each_message_gets_a_fresh_one_and_the_current_time() -> None:
    first, second = _checkpoint(**envelope("audit")), _checkpoint(**envelope("audit"))
    assert first.event_id != second.event_id
    assert first.producer == "audit" and first.correlation_id is None and first.causation_id is None
    assert first.occurred_at.tzinfo is not None


def test_a_deterministic_event_id_time_and_causes_are_kept_as_given() -> None:
    message = _checkpoint(
        **envelope("audit", event_id="cmd:1", occurred_at=MOMENT, correlation_id="D-1", causation_id="e-0")
    )
    assert (message.event_id, message.occurred_at, message.correlation_id, message.causation_id) == (
        "cmd:1",
        MOMENT,
        "D-1",
        "e-0",
    )
