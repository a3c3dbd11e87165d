"""What the audit records of one Kafka message, and the envelope facts it indexes."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Record:
    """One Kafka message exactly as consumed: nothing parsed, nothing dropped."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    kafka_timestamp: int | None = None


@dataclass(frozen=True)
class Envelope:
    """The envelope fields of a value, where it parses as a JSON object (else all None)."""

    event_id: str | None = None
    type: str | None = None
    correlation_id: str | None = None


def envelope_of(value: bytes | None) -> Envelope:
    """Read event_id, type and correlation_id from a value; tombstones and garbage give an empty envelope."""
    document = parsed(value)
    if not isinstance(document, dict):
        return Envelope()
    return Envelope(_text(document.get("event_id")), _text(document.get("type")), _text(document.get("correlation_id")))


def parsed(value: bytes | None) -> object:
    """The JSON document of a value, or None when it is a tombstone or does not parse."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # also invalid UTF-8
        return None


def _text(field: object) -> str | None:
    return field if isinstance(field, str) else None
