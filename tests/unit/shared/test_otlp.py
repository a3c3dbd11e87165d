"""Traces over OTLP/HTTP to a collector on loopback, configured by the standard OTEL_* variables."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shared.runtime.settings import TelemetrySettings
from shared.runtime.tracing import exporter_kind, tracer_provider


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[ExportTraceServiceRequest] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces"
        self.server.requests.append(ExportTraceServiceRequest.FromString(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_spans_reach_the_collector_named_by_otel_variables(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    provider = tracer_provider(TelemetrySettings(), "impact")
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("assess d-1"):
        pass
    assert provider.force_flush(5000)
    provider.shutdown()
    spans = [
        (s.name, r.resource)
        for q in collector.requests
        for r in q.resource_spans
        for ss in r.scope_spans
        for s in ss.spans
    ]
    assert [name for name, _ in spans] == ["assess d-1"]
    attributes = {a.key: a.value.string_value for a in spans[0][1].attributes}
    assert attributes["service.name"] == "countermand-impact"
    assert attributes["deployment.environment"] == "test"


def test_a_collector_that_refuses_connections_does_not_stop_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    provider = tracer_provider(TelemetrySettings(exporter="otlp"), "agent")
    tracer = provider.get_tracer("test")
    for i in range(100):  # no span raises: export failures stay in the exporter's thread
        with tracer.start_as_current_span(f"check {i}"):
            pass
    assert provider.force_flush(10_000) in (True, False)  # returns (the export failed and was logged)
    with tracer.start_as_current_span("still serving") as span:
        assert span.is_recording()
    provider.shutdown()


def test_the_project_setting_wins_over_the_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert exporter_kind(TelemetrySettings(exporter="none")) == "none"
    assert exporter_kind(TelemetrySettings()) == "otlp"
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    assert exporter_kind(TelemetrySettings()) == "none"


def test_an_unsupported_standard_exporter_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        exporter_kind(TelemetrySettings())
