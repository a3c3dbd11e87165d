"""The registry topic keeps what an audit horizon needs: its compaction settings come from the horizon (default
or given to `countermand topics apply`), no other topic is touched by it, and the README and docs say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts.catalogue import ALL_TOPICS, AUDIT_HORIZON_DAYS, DAY_MS, USERS
from shared.runtime.topics import wanted_configs

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_is_compacted_only_behind_the_audit_horizon() -> None:
    configs = USERS.configs()
    assert configs["cleanup.policy"] == "compact"
    assert int(configs["min.compaction.lag.ms"]) == AUDIT_HORIZON_DAYS * DAY_MS >= 365 * DAY_MS
    assert int(configs["delete.retention.ms"]) == AUDIT_HORIZON_DAYS * DAY_MS  # deletions stay visible as long


def test_the_horizon_is_configurable_and_applies_to_the_registry_alone() -> None:
    configs = wanted_configs(USERS, 2, audit_horizon_days=30)
    assert configs["min.compaction.lag.ms"] == configs["delete.retention.ms"] == str(30 * DAY_MS)
    assert configs["min.insync.replicas"] == "2"
    for topic in ALL_TOPICS:
        if topic is not USERS:
            assert topic.configs(30) == topic.configs(), topic.name
    with pytest.raises(ValueError, match="at least 1 day"):
        USERS.configs(0)


def test_every_compacted_topic_keeps_an_audit_horizon() -> None:
    for topic in ALL_TOPICS:
        if "compact" in topic.cleanup:
            assert int(topic.configs()["min.compaction.lag.ms"]) >= 365 * DAY_MS, topic.name


def test_the_horizon_is_documented() -> None:
    readme = (ROOT / "services" / "audit" / "README.md").read_text()
    assert f"{AUDIT_HORIZON_DAYS} days" in readme and "--audit-horizon-days" in readme
    assert "min.compaction.lag.ms" in readme and "delete.retention.ms" in readme
    assert "audit horizon" in (ROOT / "docs" / "audit-horizon.md").read_text().lower()
