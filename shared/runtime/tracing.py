"""OpenTelemetry tracing through FastStream's Kafka telemetry middleware (off by default)."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.runtime.settings import TelemetrySettings


def tracer_provider(settings: TelemetrySettings, service: str) -> TracerProvider | None:
    """A tracer provider exporting as configured, or None when tracing is off."""
    if settings.exporter == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": f"countermand-{service}"}))
    exporter = ConsoleSpanExporter() if settings.exporter == "console" else InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
