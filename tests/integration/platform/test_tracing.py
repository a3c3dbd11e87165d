"""Tracing: FastStream's Kafka telemetry middleware carries the trace from producer to consumer."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveEvent, DirectiveIssued
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

    @broker.subscriber(DIRECTIVES.name, **consumer_options(f"trace-{unique}"))
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
