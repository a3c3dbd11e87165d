"""The directive view: every intake instance reads the whole directive topic into its book."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition as KafkaPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, TopicPartition
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.intake.desk import DirectiveDesk
from services.intake.desk import SERVICE
from shared.contracts.catalogue import DIRECTIVES, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.runtime.deadletters import dead_letter_of

log = structlog.get_logger(service="intake")


def register_view(broker: KafkaBroker, desk: DirectiveDesk) -> Any:
    """Subscribe the desk's book to every partition of the directive topic, from the beginning.

    Each instance must know every directive to assign revisions, so this is a view, not a
    work-sharing consumer: a consumer group would split the partitions between instances and each
    would miss directives. Hence manual assignment of all partitions and no group: nothing is
    committed (AckPolicy.MANUAL, never acked) and every start re-reads the topic from offset 0.
    """
    partitions = [TopicPartition(DIRECTIVES.name, p, declare=False) for p in range(DIRECTIVES.partitions)]

    dead_letters = broker.publisher(dead_letter_topic(SERVICE).name, schema=DeadLetter,
                                    title=f"{dead_letter_topic(SERVICE).name}:publish",
                                    description="Directive records the view could not read.")

    @broker.subscriber(
        partitions=partitions, group_id=None, auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL,
        title=f"{DIRECTIVES.name}:view", description="Every directive event, read into intake's directive view.",
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
        log.warning("invalid directive record skipped", partition=record.partition, offset=record.offset,
                    error=str(exc)[:500])
        return None, exc


async def _bury(publisher: Any, record: Any, problem: Exception) -> None:
    """Dead-letter a bad record once per position: the view re-reads the topic at every start, so the
    letter's event id is derived from the record's position and a repeat is recognisable downstream."""
    letter = dead_letter_of(record, SERVICE, problem).model_copy(
        update={"event_id": f"dlq:{SERVICE}:{record.topic}:{record.partition}:{record.offset}"})
    await publisher.publish(letter, key=SERVICE.encode())


async def read_end_offsets(bootstrap: str, client_id: str) -> dict[int, int]:
    """End offset of each partition of the directive topic, now; fails if the topic does not match."""
    found = await _partitions(bootstrap, client_id)
    if found != set(range(DIRECTIVES.partitions)):
        raise RuntimeError(f"topic {DIRECTIVES.name} has partitions {sorted(found)}, the catalogue "
                           f"says {DIRECTIVES.partitions}: run `countermand topics apply`")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                client_id=client_id)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([KafkaPartition(DIRECTIVES.name, p) for p in sorted(found)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, client_id: str) -> set[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        [described] = await admin.describe_topics([DIRECTIVES.name])
        return {p["partition"] for p in described.get("partitions", [])}
    finally:
        await admin.close()
