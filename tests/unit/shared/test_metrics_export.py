"""Metrics over OTLP: the Prometheus registry converted and exported to a collector on loopback (counters, gauges,
histograms with their buckets), configured by the standard OTEL_* variables; a refusing collector stalls nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devtools.collector import Collector
from shared.runtime.metrics_export import (
    MetricsBridge,
    export_interval_s,
    metrics_bridge,
    metrics_data,
    metrics_exporter_kind,
)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("countermand_notices_total", "Notices.", ["channel", "outcome"], registry=registry).labels(
        "email", "delivered"
    ).inc(3)
    Gauge("countermand_cluster_rollouts", "Rollouts.", ["cluster", "state"], registry=registry).labels(
        "eu-1", "applied"
    ).set(2)
    enforce = Histogram("countermand_time_to_enforce_seconds", "T.", ["kind"], buckets=(1, 5), registry=registry)
    for seconds in (0.5, 2, 3, 9):
        enforce.labels("issue").observe(seconds)
    return registry


def _metrics(data: object) -> dict[str, object]:
    return {m.name: m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}  # type: ignore[attr-defined]


def test_counters_gauges_and_histograms_keep_their_values_and_labels() -> None:
    metrics = _metrics(metrics_data(_registry(), Resource.create({}), 1))
    (notices,) = metrics["countermand_notices"].data.data_points
    assert metrics["countermand_notices"].data.is_monotonic
    assert (dict(notices.attributes), notices.value) == ({"channel": "email", "outcome": "delivered"}, 3.0)
    (rollouts,) = metrics["countermand_cluster_rollouts"].data.data_points
    assert (dict(rollouts.attributes), rollouts.value) == ({"cluster": "eu-1", "state": "applied"}, 2.0)
    (enforce,) = metrics["countermand_time_to_enforce_seconds"].data.data_points
    assert dict(enforce.attributes) == {"kind": "issue"}
    assert (enforce.count, enforce.sum) == (4, 14.5)
    assert list(enforce.explicit_bounds) == [1.0, 5.0]
    assert list(enforce.bucket_counts) == [1, 2, 1], "per bucket, not cumulative"


def test_the_collector_receives_the_registry_over_otlp_http(monkeypatch: pytest.MonkeyPatch) -> None:
    with Collector() as collector:
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
        bridge = metrics_bridge("notifier", _registry())
        assert bridge is not None
        assert bridge.export_once()
        bridge.stop()
        names = collector.metric_names()
    assert set(names) == {"countermand-notifier"}
    assert {"countermand_notices", "countermand_cluster_rollouts", "countermand_time_to_enforce_seconds"} <= names[
        "countermand-notifier"
    ]


def test_a_collector_refusing_connections_fails_exports_in_the_bridge_thread_only() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{dead}/v1/metrics", timeout=1)
    bridge = MetricsBridge(exporter, Resource.create({}), _registry(), interval_s=0.05).start()
    try:
        assert bridge.export_once() is False  # refused, logged, returned: nothing raised to the caller
        deadline = time.monotonic() + 60
        while bridge.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bridge.failures >= 3 and bridge._thread.is_alive(), "the thread keeps trying, on its own"
    finally:
        bridge.stop(timeout_s=5)
    assert not bridge._thread.is_alive()


def test_metrics_export_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    assert metrics_exporter_kind() == "none"
    assert metrics_bridge("impact") is None


def test_a_service_that_exports_no_metrics_over_otlp_never_loads_the_sdk_metrics() -> None:
    loaded = "import sys, services.impact.__main__; print(sorted(m for m in sys.modules if 'sdk.metrics' in m))"
    found = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout


def test_an_unsupported_exporter_or_interval_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(ValueError, match="OTEL_METRICS_EXPORTER='prometheus'"):
        metrics_exporter_kind()
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "soon")
    with pytest.raises(ValueError, match="OTEL_METRIC_EXPORT_INTERVAL='soon'"):
        export_interval_s()
