"""The directive view: every intake instance reads the whole directive topic into its book."""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.intake.desk import SERVICE, DirectiveDesk
from services.intake.records import directive_of
from shared.contracts.catalogue import DIRECTIVES, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.runtime.broker import view_subscriber
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.signing import KeySet

log = structlog.get_logger(service="intake")


def register_view(broker: KafkaBroker, desk: DirectiveDesk, keys: KeySet | None = None) -> Any:
    """Subscribe the desk's book to the whole directive topic, from the beginning, at every start.

    Each instance must know every directive to assign revisions, so this is a view (no group, nothing
    committed), not a work-sharing consumer. A record not signed by intake's keys (`keys`; None: checks off)
    is dead-lettered and left out of the book, like one that does not parse.
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
        event, problem = _parse(record, keys)
        if problem is not None:
            await _bury(dead_letters, record, problem)
        desk.record(event, record.partition, record.offset)

    return on_directive_event


def _parse(record: Any, keys: KeySet | None) -> tuple[Any, Exception | None]:
    # Intake validates and signs before publishing, so an invalid or unsigned record was written by someone else;
    # the view dead-letters it and goes on rather than stall every later revision behind it.
    event, problem = directive_of(record, keys)
    if problem is not None:
        log.warning(
            "invalid directive record skipped",
            partition=record.partition,
            offset=record.offset,
            error=f"{type(problem).__name__}: {problem}"[:500],
        )
    return event, problem


async def _bury(publisher: Any, record: Any, problem: Exception) -> None:
    """Dead-letter a bad record once per position: the view re-reads the topic at every start, so the
    letter's event id is derived from the record's position and a repeat is recognisable downstream.
    A letter that cannot be written is logged and skipped: the view must get past the record."""
    event_id = f"dlq:{SERVICE}:{record.topic}:{record.partition}:{record.offset}"

    async def publish(letter: DeadLetter) -> None:
        await publisher.publish(letter.model_copy(update={"event_id": event_id}), key=SERVICE.encode())

    await write_dead_letter(publish, record, SERVICE, problem)
