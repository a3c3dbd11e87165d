"""The alert rules and the dashboard: valid for the real promtool, firing when they should, on metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import shared.runtime.metrics  # noqa: F401  (registers every metric)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "countermand.json"
_METRIC = re.compile(r"\b(countermand_[a-z_]+)")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make tools` installs Debian's prometheus package (make test does)"
    return found


def defined_series() -> set[str]:
    names = set()
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created"):
                names.add(family.name + suffix)
    return names


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout + done.stderr


def test_every_alert_fires_on_its_series_and_not_before() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", "rules_test.yml"], cwd=RULES.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=lambda p: p.name)
def test_rules_and_dashboard_use_only_metrics_the_services_define(path: Path) -> None:
    used = set(_METRIC.findall(path.read_text()))
    assert used, f"{path.name} names no countermand metric"
    assert used <= defined_series(), f"{path.name} uses undefined metrics: {sorted(used - defined_series())}"


def test_the_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "countermand"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
