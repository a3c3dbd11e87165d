"""The envelope every message on every topic carries."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def new_event_id() -> str:
    """A fresh, globally unique event id (not Kafka's offset): 128 random bits as 32 hex digits (the shape of a
    uuid4's hex, without building a UUID object: a fifth of the cost)."""
    return os.urandom(16).hex()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def envelope(
    producer: str,
    *,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> dict[str, Any]:
    """The envelope fields of a message, for its constructor (`Model(**envelope(...), ...)`).

    Without an event_id or occurred_at the message gets a fresh id and the current time (Event's defaults);
    commands pass deterministic ids so a re-publish is recognised.
    """
    fields: dict[str, Any] = {"producer": producer, "correlation_id": correlation_id, "causation_id": causation_id}
    if event_id is not None:
        fields["event_id"] = event_id
    if occurred_at is not None:
        fields["occurred_at"] = occurred_at
    return fields


class Message(BaseModel):
    """Base of every message: strict about unknown fields so drift fails loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Message):
    """Envelope fields shared by every message on the wire."""

    event_id: str = Field(
        default_factory=new_event_id,
        min_length=1,
        max_length=200,
        description="Unique id of this event; deterministic for commands so redelivery is recognised.",
        examples=["5f0c1b0e9d2a4c7e8b1f2a3c4d5e6f70"],
    )
    schema_version: int = Field(1, ge=1, description="Version of this message's schema.", examples=[1])
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now,
        description="When the fact happened, timezone-aware (UTC on the wire).",
        examples=["2026-11-27T09:00:00Z"],
    )
    producer: str = Field(
        ...,
        min_length=1,
        description="Service (and instance) that produced the message.",
        examples=["intake"],
    )
    correlation_id: str | None = Field(
        None,
        description="Directive id this message belongs to, where there is one.",
        examples=["EXP-2026-001"],
    )
    causation_id: str | None = Field(
        None,
        description="event_id of the message that caused this one.",
        examples=["9a1b2c3d4e5f60718293a4b5c6d7e8f9"],
    )
