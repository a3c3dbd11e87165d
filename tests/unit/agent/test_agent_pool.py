"""Several agents in one process (devtools.agent_pool, for benchmarks): each from its own environment alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.agent_pool import settings_of
from services.agent.app import build


def agent_env(cluster: str, state: Path, username: str) -> dict[str, str]:
    return {
        "COUNTERMAND_AGENT_CLUSTER_ID": cluster,
        "COUNTERMAND_AGENT_MODELS": "fable-5,mythos-5",
        "COUNTERMAND_AGENT_STATE_DIR": str(state),
        "COUNTERMAND_AGENT_HTTP_PORT": "0",
        "COUNTERMAND_KAFKA_SASL_USERNAME": username,
        "COUNTERMAND_AUTH": "off",
        "COUNTERMAND_SIGNING_MODE": "off",
    }


def test_each_agent_reads_its_own_environment_and_the_process_environment_is_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERMAND_AGENT_CLUSTER_ID", "the-process-own")
    before = dict(os.environ)
    first = settings_of(agent_env("c-one", tmp_path / "one", "agent-c-one"))
    second = settings_of(agent_env("c-two", tmp_path / "two", "agent-c-two"))
    assert (first.cluster_id, first.kafka.sasl_username, first.state_dir) == ("c-one", "agent-c-one", tmp_path / "one")
    assert (second.cluster_id, second.kafka.sasl_username, second.state_dir) == (
        "c-two",
        "agent-c-two",
        tmp_path / "two",
    )
    assert first.models == second.models == ["fable-5", "mythos-5"]
    assert dict(os.environ) == before


def test_an_invalid_agent_environment_is_refused_and_the_process_environment_restored(tmp_path: Path) -> None:
    before = dict(os.environ)
    with pytest.raises(ValueError, match="cluster_id"):
        settings_of({**agent_env("c-one", tmp_path, "agent-c-one"), "COUNTERMAND_AGENT_CLUSTER_ID": "Not A Cluster"})
    assert dict(os.environ) == before


def test_agents_built_in_one_process_keep_their_own_state_and_partition(tmp_path: Path) -> None:
    agents = [build(settings_of(agent_env(c, tmp_path, f"agent-{c}"))) for c in ("c-one", "c-two")]
    try:
        assert [a.settings.cluster_id for a in agents] == ["c-one", "c-two"]
        assert agents[0].holding.store is not agents[1].holding.store
        assert sorted(p.name for p in (tmp_path / "agent").iterdir() if p.suffix == ".sqlite3") == [
            "c-one.sqlite3",
            "c-two.sqlite3",
        ]
    finally:
        for agent in agents:
            agent.holding.store.close()
