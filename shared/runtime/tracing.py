"""OpenTelemetry tracing through FastStream's Kafka telemetry middleware (off by default; OTLP in production)."""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.runtime.settings import TelemetrySettings

_STANDARD = {"otlp": "otlp", "console": "console", "none": "none"}


def exporter_kind(settings: TelemetrySettings) -> str:
    """The configured exporter: COUNTERMAND_OTEL_EXPORTER, else the standard OTEL_TRACES_EXPORTER, else none."""
    if settings.exporter is not None:
        return settings.exporter
    standard = os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")[0].strip().lower()
    if standard not in _STANDARD:
        raise ValueError(f"OTEL_TRACES_EXPORTER={standard!r} is not supported here (otlp, console or none)")
    return _STANDARD[standard]


def tracer_provider(settings: TelemetrySettings, service: str) -> TracerProvider | None:
    """A tracer provider exporting as configured, or None when tracing is off.

    The resource merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (the SDK reads them) over the default
    service name. OTLP export is batched off the hot path; an unreachable collector costs dropped spans and a
    logged warning, never a stalled service.
    """
    kind = exporter_kind(settings)
    if kind == "none":
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", f"countermand-{service}")})
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return provider
    exporter = ConsoleSpanExporter() if kind == "console" else InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
