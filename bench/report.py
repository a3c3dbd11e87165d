"""Write benchmark results to bench/results/<name>.json and print them as a table."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_1m": round(psutil.getloadavg()[0], 2),
    }


def publish(name: str, rows: list[dict[str, Any]], title: str) -> Path:
    """Save rows (each: metric, value, unit, target, note) and print them; returns the file written.

    `target` is a string such as "<= 1.5" or ">= 2000000" or "" when there is none; the table shows
    whether the measured value meets it. Nothing here asserts: benchmarks report what they measured.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": rows,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    table = Table("metric", "value", "unit", "target", "met", "note", title=title)
    for row in rows:
        table.add_row(
            row["metric"],
            _fmt(row["value"]),
            row.get("unit", ""),
            row.get("target", ""),
            _met(row["value"], row.get("target", "")),
            row.get("note", ""),
        )
    console = Console()
    console.print(table)
    console.print(f"machine: {document['machine']}  written to {path}")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _met(value: Any, target: str) -> str:
    if not target or not isinstance(value, int | float):
        return ""
    op, bound = target.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return "yes" if ok else "NO"
