"""A directive record as intake's view and arbiter read it: its signature checked against intake's own keys at the
record's time (a key retired since still vouches for what it signed before), then the event parsed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.record_signing import verify_record
from shared.runtime.signing import KeySet


def directive_of(record: Any, keys: KeySet | None) -> tuple[Any, Exception | None]:
    """(the event, None), or (None, why it is not one of intake's directive events: SignatureRefused naming the
    reason, or the validation error). `keys` None: signatures are off."""
    try:
        verify_record(keys, record, now=record_time(record))
        return DIRECTIVES.adapter.validate_json(record.value or b""), None
    except (ValidationError, ValueError, TypeError) as exc:  # SignatureRefused is a ValueError
        return None, exc


def record_time(record: Any) -> datetime | None:
    """When the record was produced (its Kafka timestamp), or None when it has none."""
    timestamp = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int) and timestamp >= 0 else None
