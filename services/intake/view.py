"""The directive view: every intake instance reads the whole directive topic into its book."""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.intake.desk import SERVICE, DirectiveDesk
from shared.contracts.catalogue import DIRECTIVES, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.runtime.broker import view_subscriber
from shared.runtime.deadletters import write_dead_letter

log = structlog.get_logger(service="intake")


def register_view(broker: KafkaBroker, desk: DirectiveDesk) -> Any:
    """Subscribe the desk's book to the whole directive topic, from the beginning, at every start.

    Each instance must know every directive to assign revisions, so this is a view (no group, nothing
    committed), not a work-sharing consumer.
    """
    dead_letters = broker.publisher(
        dead_letter_topic(SERVICE).name,
        schema=DeadLetter,
        title=f"{dead_letter_topic(SERVICE).name}:publish",
        description="Directive records the view could not read.",
    )

    @view_subscriber(
        broker,
        DIRECTIVES,
        title=f"{DIRECTIVES.name}:view",
        description="Every directive event, read into intake's directive view.",
    )
    async def on_directive_event(message: KafkaMessage) -> None:
        record = message.raw_message
        event, problem = _parse(record)
        if problem is not None:
            await _bury(dead_letters, record, problem)
        desk.record(event, record.partition, record.offset)

    return on_directive_event


def _parse(record: Any) -> tuple[Any, Exception | None]:
    # Intake validates before publishing, so an invalid record was written by someone else; the view
    # dead-letters it and goes on rather than stall every later revision behind it.
    try:
        return DIRECTIVES.adapter.validate_json(record.value or b""), None
    except (ValidationError, ValueError, TypeError) as exc:
        log.warning(
            "invalid directive record skipped", partition=record.partition, offset=record.offset, error=str(exc)[:500]
        )
        return None, exc


async def _bury(publisher: Any, record: Any, problem: Exception) -> None:
    """Dead-letter a bad record once per position: the view re-reads the topic at every start, so the
    letter's event id is derived from the record's position and a repeat is recognisable downstream.
    A letter that cannot be written is logged and skipped: the view must get past the record."""
    event_id = f"dlq:{SERVICE}:{record.topic}:{record.partition}:{record.offset}"

    async def publish(letter: DeadLetter) -> None:
        await publisher.publish(letter.model_copy(update={"event_id": event_id}), key=SERVICE.encode())

    await write_dead_letter(publish, record, SERVICE, problem)
