"""Metrics over OTLP: the Prometheus registry (the metrics defined once in metrics.py, FastStream's, the process's)
read and exported periodically by the OpenTelemetry SDK's OTLP/HTTP metric exporter, off the event loop."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import structlog
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric as PrometheusFamily

from shared.runtime.metrics_env import export_interval_s, metrics_exporter_kind

_SCOPE = InstrumentationScope("countermand.prometheus-bridge")
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def metrics_data(registry: CollectorRegistry, resource: Resource, started_ns: int) -> MetricsData:
    """The registry's current values as OpenTelemetry metrics data: counters as monotonic cumulative sums,
    gauges as gauges, histograms as cumulative explicit-bucket histograms (other kinds are left out)."""
    now = time.time_ns()
    metrics = [m for family in registry.collect() if (m := _converted(family, started_ns, now)) is not None]
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(_SCOPE, metrics, "")], "")])


def _converted(family: PrometheusFamily, start: int, now: int) -> Metric | None:
    if family.type == "counter":
        points = _numbers(family, "_total", start, now)
        return Metric(family.name, family.documentation, family.unit, Sum(points, _CUMULATIVE, is_monotonic=True))
    if family.type == "gauge":
        return Metric(family.name, family.documentation, family.unit, Gauge(_numbers(family, "", start, now)))
    if family.type == "histogram":
        return Metric(
            family.name, family.documentation, family.unit, Histogram(_histograms(family, start, now), _CUMULATIVE)
        )
    return None


def _key(labels: dict[str, str], *drop: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in drop))


def _created(family: PrometheusFamily) -> dict[tuple, int]:
    return {_key(s.labels): int(s.value * 1e9) for s in family.samples if s.name.endswith("_created")}


def _numbers(family: PrometheusFamily, suffix: str, start: int, now: int) -> list[NumberDataPoint]:
    created = _created(family)
    return [
        NumberDataPoint(dict(s.labels), created.get(_key(s.labels), start), now, s.value)
        for s in family.samples
        if s.name == family.name + suffix
    ]


def _histograms(family: PrometheusFamily, start: int, now: int) -> list[HistogramDataPoint]:
    created = _created(family)
    series: dict[tuple, dict[str, Any]] = {}
    for sample in family.samples:
        key = _key(sample.labels, "le")
        entry = series.setdefault(key, {"buckets": [], "count": 0, "sum": 0.0})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), int(sample.value)))
        elif sample.name.endswith("_count"):
            entry["count"] = int(sample.value)
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
    return [
        _histogram(dict(key), entry, created.get(key, start), now) for key, entry in series.items() if entry["buckets"]
    ]


def _histogram(labels: dict[str, str], entry: dict[str, Any], start: int, now: int) -> HistogramDataPoint:
    cumulative = sorted(entry["buckets"])  # Prometheus counts cumulatively up to each bound; OTLP per bucket
    counts = [n - (cumulative[i - 1][1] if i else 0) for i, (_, n) in enumerate(cumulative)]
    bounds = [bound for bound, _ in cumulative if bound != float("inf")]
    nan = float("nan")
    return HistogramDataPoint(labels, start, now, entry["count"], entry["sum"], counts, bounds, nan, nan)


class MetricsBridge:
    """Exports the registry every OTEL_METRIC_EXPORT_INTERVAL ms (60000 by default) from a daemon thread.

    An unreachable collector costs a logged warning per attempt (the exporter's own timeout bounds each one):
    the service's event loop never waits on it.
    """

    def __init__(
        self,
        exporter: MetricExporter,
        resource: Resource,
        registry: CollectorRegistry = REGISTRY,
        interval_s: float | None = None,
    ) -> None:
        self.exporter = exporter
        self.resource = resource
        self.registry = registry
        self.interval_s = interval_s if interval_s is not None else export_interval_s()
        self.started_ns = time.time_ns()
        self.failures = 0  # exports the collector did not take (each logged)
        self.log = structlog.get_logger("countermand.metrics")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-metrics", daemon=True)

    def start(self) -> MetricsBridge:
        self._thread.start()
        return self

    def export_once(self) -> bool:
        """One export of the registry as it is now; False (logged) when the collector did not take it."""
        try:
            done = self.exporter.export(metrics_data(self.registry, self.resource, self.started_ns))
        except Exception as exc:  # the exporter reports failures itself; a surprise must not end the thread
            self.failures += 1
            self.log.warning("metrics export failed", error=repr(exc))
            return False
        if done is not MetricExportResult.SUCCESS:
            self.failures += 1
            self.log.warning("metrics export not accepted by the collector")
            return False
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after one last export (bounded by `timeout_s`), then shut the exporter down."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.exporter.shutdown(timeout_millis=timeout_s * 1000)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export_once()
        self.export_once()


def metrics_bridge(service: str, registry: CollectorRegistry = REGISTRY) -> MetricsBridge | None:
    """A started bridge when OTEL_METRICS_EXPORTER=otlp (the OTEL_EXPORTER_OTLP_* variables say where); None
    otherwise. The resource is the traces' one: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over the default."""
    if metrics_exporter_kind() == "none":
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", f"countermand-{service}")})
    return MetricsBridge(OTLPMetricExporter(), resource, registry).start()
