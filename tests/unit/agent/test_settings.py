"""Agent settings: cluster id required, models from a comma-separated environment value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.agent.settings import AgentSettings


def test_models_accept_a_comma_separated_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERMAND_AGENT_CLUSTER_ID", "us-east")
    monkeypatch.setenv("COUNTERMAND_AGENT_MODELS", "fable-5, mythos-5")
    settings = AgentSettings()
    assert settings.models == ["fable-5", "mythos-5"]
    assert settings.group == "countermand-agent-us-east"


def test_a_missing_cluster_id_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COUNTERMAND_AGENT_CLUSTER_ID", raising=False)
    with pytest.raises(ValidationError, match="cluster_id"):
        AgentSettings()


def test_a_bad_model_name_is_named() -> None:
    with pytest.raises(ValidationError, match="Fable 5"):
        AgentSettings(cluster_id="us-east", models="fable-5,Fable 5")


def test_staleness_and_chunk_timeout_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERMAND_AGENT_STALE_AFTER_S", "12.5")
    monkeypatch.setenv("COUNTERMAND_AGENT_CHUNK_TIMEOUT_S", "90")
    settings = AgentSettings(cluster_id="us-east")
    assert (settings.stale_after_s, settings.chunk_timeout_s) == (12.5, 90.0)


@pytest.mark.parametrize("field", ["stale_after_s", "chunk_timeout_s"])
def test_a_non_positive_bound_is_named(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AgentSettings(cluster_id="us-east", **{field: 0})
