"""OpenTelemetry tracing through FastStream's Kafka telemetry middleware and a SERVER span per HTTP request (off by
default; OTLP in production)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.runtime.settings import TelemetrySettings

_PROPAGATOR = TraceContextTextMapPropagator()
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


class ServerSpans:
    """ASGI middleware: one SERVER span per HTTP request (continuing a caller's W3C traceparent), current while the
    app handles it, so what the request publishes starts its trace there."""

    def __init__(self, app: Any, provider: TracerProvider) -> None:
        self.app = app
        self.tracer = provider.get_tracer("countermand.http")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())}
        status: list[int] = []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with self.tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}",
            context=_PROPAGATOR.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        ) as span:
            await self.app(scope, receive, sending)
            if route := getattr(scope.get("route"), "path", None):  # the template, not the ids in the path
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
            if status:
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(trace.StatusCode.ERROR)


def traced_http(app: Any, provider: TracerProvider | None) -> Any:
    """The app with a SERVER span per request when tracing is on; the app itself otherwise."""
    return app if provider is None else ServerSpans(app, provider)
