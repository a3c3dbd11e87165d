"""Tracing: FastStream's Kafka telemetry middleware carries the trace from producer to consumer; what a process
produces outside a consumed record's span (a background task, a batch handler) continues its cause's trace."""

from __future__ import annotations

import asyncio
from contextvars import Context
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devtools.observe import group_starts_at, topics_end
from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveEvent, DirectiveIssued, DirectiveLifted
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.settings import KafkaSettings, ServiceSettings, TelemetrySettings
from shared.runtime.tracing import tracer_provider


def test_tracing_is_off_by_default() -> None:
    assert tracer_provider(TelemetrySettings(), "impact") is None


async def test_a_consumed_message_continues_the_producers_trace(bootstrap: str, unique: str) -> None:
    spans = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(spans))
    settings = ServiceSettings(kafka=KafkaSettings(bootstrap=bootstrap))
    broker = make_broker(settings, "impact", traces=traces)
    seen: list[str] = []

    @broker.subscriber(DIRECTIVES.name, **await _from_now(bootstrap, f"trace-{unique}"))
    async def on_directive(body: DirectiveEvent) -> None:
        if body.directive_id == unique:
            seen.append(body.directive_id)

    async with broker:
        await broker.start()
        publisher = declare_publisher(broker, DIRECTIVES)
        await emit(
            publisher,
            DIRECTIVES,
            DirectiveIssued(
                producer="test",
                directive_id=unique,
                revision=1,
                title="t",
                scope={"models": ["fable-5"], "selector": {"kind": "everyone"}},
            ),
        )
        for _ in range(300):
            if seen:
                break
            await asyncio.sleep(0.1)
    assert seen == [unique]
    finished = spans.get_finished_spans()
    kinds = {span.kind.name for span in finished}
    assert {"PRODUCER", "CONSUMER"} <= kinds, kinds
    producer_traces = {s.context.trace_id for s in finished if s.kind.name == "PRODUCER"}
    consumer_traces = {s.context.trace_id for s in finished if s.kind.name == "CONSUMER"}
    assert producer_traces & consumer_traces, "the consumer span must join the producer's trace"


async def _from_now(bootstrap: str, group: str) -> dict[str, Any]:
    """Consumer options of a group that starts at the directive topic's end: it reads this test's records only,
    not what earlier tests left there (some of it not valid directive events)."""
    await group_starts_at(bootstrap, group, await topics_end(bootstrap, DIRECTIVES))
    return consumer_options(group)


def _traced_broker(bootstrap: str) -> tuple[KafkaBroker, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(spans))
    settings = ServiceSettings(kafka=KafkaSettings(bootstrap=bootstrap))
    return make_broker(settings, "enforcement", traces=traces, dead_letters=False), spans


def _issued(directive_id: str) -> DirectiveIssued:
    return DirectiveIssued(
        producer="test",
        directive_id=directive_id,
        revision=1,
        title="t",
        scope={"models": ["fable-5"], "selector": {"kind": "everyone"}},
    )


def _lifted(issued: DirectiveIssued) -> DirectiveLifted:
    return DirectiveLifted(
        producer="test",
        directive_id=issued.directive_id,
        revision=2,
        reason="background",
        correlation_id=issued.directive_id,
        causation_id=issued.event_id,
    )


def _publish_span(spans: InMemorySpanExporter, event_id: str) -> ReadableSpan:
    return next(
        s
        for s in spans.get_finished_spans()
        if s.name.endswith("publish") and s.attributes.get("messaging.message.conversation_id") == event_id
    )


async def _until(condition: Any) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not seen in 30 s")


async def test_a_record_produced_after_the_handler_returned_continues_its_causes_trace(
    bootstrap: str, unique: str
) -> None:
    broker, spans = _traced_broker(bootstrap)
    consumed: list[DirectiveIssued] = []

    @broker.subscriber(DIRECTIVES.name, **await _from_now(bootstrap, f"trace-bg-{unique}"))
    async def on_directive(body: DirectiveEvent) -> None:
        if body.directive_id == unique and isinstance(body, DirectiveIssued):
            consumed.append(body)

    async with broker:
        await broker.start()
        publisher = declare_publisher(broker, DIRECTIVES)
        issued = _issued(unique)
        await emit(publisher, DIRECTIVES, issued)
        await _until(lambda: consumed)
        # a background loop (a deadline, a re-send): a fresh task, no span current
        lifted = _lifted(issued)
        await asyncio.get_running_loop().create_task(emit(publisher, DIRECTIVES, lifted), context=Context())
    processed = next(
        s
        for s in spans.get_finished_spans()
        if s.name.endswith("process") and s.attributes.get("messaging.message.conversation_id") == issued.event_id
    )
    later = _publish_span(spans, lifted.event_id)
    assert later.context.trace_id == _publish_span(spans, issued.event_id).context.trace_id
    ids = {s.context.span_id for s in spans.get_finished_spans() if s.context.trace_id == later.context.trace_id}
    assert processed.context.span_id in ids and later.parent is not None and later.parent.span_id in ids


async def test_a_batch_handler_produces_in_the_trace_of_each_records_cause(bootstrap: str, unique: str) -> None:
    broker, spans = _traced_broker(bootstrap)
    lifted: list[DirectiveLifted] = []

    @broker.subscriber(DIRECTIVES.name, batch=True, **await _from_now(bootstrap, f"trace-batch-{unique}"))
    async def on_directives(bodies: list[DirectiveEvent]) -> None:
        for body in bodies:
            if body.directive_id == unique and isinstance(body, DirectiveIssued):
                lifted.append(_lifted(body))
                await emit(publisher, DIRECTIVES, lifted[-1])

    publisher = declare_publisher(broker, DIRECTIVES)
    async with broker:
        await broker.start()
        issued = _issued(unique)
        await emit(publisher, DIRECTIVES, issued)
        await _until(lambda: lifted)
    produced = _publish_span(spans, lifted[0].event_id)
    assert produced.context.trace_id == _publish_span(spans, issued.event_id).context.trace_id
