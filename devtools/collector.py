"""A test OpenTelemetry collector on loopback: receives OTLP/HTTP exports (traces and metrics, protobuf, plain or
gzip) and keeps the decoded requests, so tests can check the spans and metric points that services exported."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_MESSAGES = {"/v1/traces": ExportTraceServiceRequest, "/v1/metrics": ExportMetricsServiceRequest}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in hex, the exporting service's name, its attributes as strings."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, str]


class Collector(ThreadingHTTPServer):
    """`with Collector() as c:` serves on 127.0.0.1 (c.endpoint) until the block ends."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="otlp-collector")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def received(self, path: str, request: Any) -> None:
        with self._lock:
            (self.traces if path == "/v1/traces" else self.metrics).append(request)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._lock:
            requests = list(self.traces)
        return [
            ReceivedSpan(
                service=_attributes(resource.resource.attributes).get("service.name", ""),
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(),
                kind=span.kind,
                attributes=_attributes(span.attributes),
            )
            for request in requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def metric_names(self) -> dict[str, set[str]]:
        """Metric names received so far, per exporting service."""
        with self._lock:
            requests = list(self.metrics)
        names: dict[str, set[str]] = {}
        for request in requests:
            for resource in request.resource_metrics:
                service = _attributes(resource.resource.attributes).get("service.name", "")
                for scope in resource.scope_metrics:
                    names.setdefault(service, set()).update(m.name for m in scope.metrics)
        return names


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = _MESSAGES.get(self.path)
        if message is None:
            self.send_error(404, f"no OTLP signal at {self.path}")
            return
        self.server.received(self.path, message.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _attributes(pairs: Any) -> dict[str, str]:
    return {a.key: str(getattr(a.value, a.value.WhichOneof("value") or "string_value")) for a in pairs}
