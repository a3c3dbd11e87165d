"""The standard OTEL_* variables of metrics export, read without importing the OpenTelemetry SDK: a process that
exports no metrics over OTLP (the default) never loads it (metrics_export.py does, when asked)."""

from __future__ import annotations

import os

_SUPPORTED = ("otlp", "none")


def metrics_exporter_kind() -> str:
    """The standard OTEL_METRICS_EXPORTER: otlp or none (the default); anything else is refused by name."""
    kind = os.environ.get("OTEL_METRICS_EXPORTER", "none").split(",")[0].strip().lower() or "none"
    if kind not in _SUPPORTED:
        raise ValueError(f"OTEL_METRICS_EXPORTER={kind!r} is not supported here (otlp or none)")
    return kind


def export_interval_s() -> float:
    """OTEL_METRIC_EXPORT_INTERVAL in seconds (60 by default); a value that is not a positive number is refused."""
    raw = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")
    try:
        interval = float(raw) / 1000
    except ValueError:
        raise ValueError(f"OTEL_METRIC_EXPORT_INTERVAL={raw!r} is not a number of milliseconds") from None
    if interval <= 0:
        raise ValueError(f"OTEL_METRIC_EXPORT_INTERVAL={raw!r} must be positive")
    return interval
