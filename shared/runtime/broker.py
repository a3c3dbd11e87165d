"""Broker factory and subscriber defaults that apply the project's delivery rules.

Producers: idempotent, acks=all. Consumers: explicit group, earliest offset reset, committed records only,
offsets committed only after the handler returned (the message's effect is durable), and a dead-letter path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, TopicPartition
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from shared.contracts.catalogue import FETCH_BYTES, Topic, key_of
from shared.runtime.causation import causation_middleware, producing
from shared.runtime.deadletters import dead_letter_middleware
from shared.runtime.health import ConsumerWatch
from shared.runtime.kafka import ISOLATION, broker_options
from shared.runtime.record_headers import raw_values, tolerant_parser
from shared.runtime.record_signing import encoded, publish_signed
from shared.runtime.settings import ServiceSettings
from shared.runtime.signing import Signer
from shared.runtime.tracing import tracer_provider

# Commit after the handler returns; on an unexpected error (including a failed dead-letter write)
# seek back so the message is redelivered rather than lost.
ACK_POLICY = AckPolicy.NACK_ON_ERROR


def make_broker(
    settings: ServiceSettings,
    service: str,
    *,
    dead_letters: bool = True,
    traces: TracerProvider | None = None,
    watch: ConsumerWatch | None = None,
    **producer: Any,
) -> KafkaBroker:
    """A KafkaBroker for one service with idempotent producers, traces, FastStream's Prometheus metrics (messages
    received, processed and published, their sizes and durations, on the process registry that /metrics serves)
    and the dead-letter middleware (which counts failures per record on `watch`, for the service's readiness).
    `producer` adds producer options (a transactional id)."""
    middlewares: list[Any] = []
    provider = traces or tracer_provider(settings.telemetry, service)
    if provider is not None:
        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=provider))
        middlewares.append(causation_middleware())  # inside the telemetry middleware: sees each record's span
    middlewares.append(KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service))
    if dead_letters:
        middlewares.append(dead_letter_middleware(service, watch=watch))
    return KafkaBroker(
        **broker_options(settings.kafka, f"{service}-{settings.instance}"),
        middlewares=middlewares,
        parser=tolerant_parser,
        logger=structlog.get_logger("faststream", service=service),
        log_level=logging.DEBUG,  # FastStream's per-message "Received/Processed" lines are debug noise
        description=f"Countermand {service} service",
        **producer,
    )


def consumer_options(group: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for broker.subscriber(...) that every consumer uses."""
    options: dict[str, Any] = {
        "group_id": group,
        "auto_offset_reset": "earliest",
        "ack_policy": ACK_POLICY,
        "max_partition_fetch_bytes": FETCH_BYTES,
        "isolation_level": ISOLATION,
    }
    options.update(overrides)
    return options


def view_subscriber(broker: KafkaBroker, topic: Topic, *, title: str, description: str, **options: Any) -> Any:
    """A subscriber that reads the WHOLE topic into a view: every partition assigned, from the beginning, no group.

    Each instance needs every record (a directive book, a user view), so this is not a work-sharing consumer: a
    group would split the partitions between instances. Nothing is committed (manual acks, never acked); the
    caller seeks where it resumes from, if anywhere.
    """
    partitions = [TopicPartition(topic.name, p, declare=False) for p in range(topic.partitions)]
    defaults: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.MANUAL,
        "max_partition_fetch_bytes": FETCH_BYTES,
        "isolation_level": ISOLATION,
    }
    if options.get("batch"):
        defaults["decoder"] = raw_values  # a batch view reads its records itself
    return broker.subscriber(partitions=partitions, title=title, description=description, **{**defaults, **options})


def declare_publisher(broker: KafkaBroker, topic: Topic, description: str = "") -> Any:
    """A publisher for a catalogue topic, documented in the service's AsyncAPI with its message schema."""
    return broker.publisher(
        topic.name, schema=topic.message, title=f"{topic.name}:publish", description=description or None
    )


async def emit(
    publisher: Any, topic: Topic, message: Any, *, headers: dict[str, str] | None = None, signer: Signer | None = None
) -> None:
    """Publish a contract message with the catalogue's key (signed when a signer is given: the bytes signed are
    the bytes sent), in the trace it belongs to (see causation.py); returns once acknowledged (acks=all)."""
    if signer is not None:
        await publish_signed(publisher, topic, message, signer)
        return
    with producing(message):
        await publisher.publish(
            message,
            key=key_of(topic, message),
            headers=headers,
            correlation_id=getattr(message, "event_id", None),
        )


async def emit_all(
    publisher: Any, topic: Topic, messages: list[Any], *, window: int = 8, signer: Signer | None = None
) -> None:
    """Publish several contract messages, `window` at a time in flight; returns once all are acknowledged.

    One broker round trip per window instead of one per message (an assessment's chunks); per partition
    the idempotent producer keeps their order. On a failure some may be on the topic already: callers
    publish again, and consumers are idempotent on event_id.
    """
    for start in range(0, len(messages), window):
        futures = [  # serialised by pydantic (model_dump_json), a third of what FastStream's encoder costs
            await publish_signed(publisher, topic, message, signer, value=encoded(message), no_confirm=True)
            for message in messages[start : start + window]
        ]
        await asyncio.gather(*(f for f in futures if f is not None))  # None: FastStream's in-memory test broker
