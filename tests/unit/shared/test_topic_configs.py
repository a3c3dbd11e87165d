"""`countermand topics apply --min-insync-replicas`: the configs it asks for, and the bad input it refuses."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.contracts.catalogue import ALL_TOPICS, COMMANDS, USERS
from shared.runtime.topics import apply_topics, wanted_configs

UNREACHABLE = "127.0.0.1:1"


def test_without_min_insync_the_configs_are_the_catalogue_s() -> None:
    for topic in ALL_TOPICS:
        assert wanted_configs(topic) == topic.configs()
        assert "min.insync.replicas" not in wanted_configs(topic)


def test_min_insync_is_added_to_every_topic_s_catalogue_configs() -> None:
    for topic in ALL_TOPICS:
        assert wanted_configs(topic, 2) == {**topic.configs(), "min.insync.replicas": "2"}
    assert wanted_configs(COMMANDS, 2)["max.message.bytes"] == "2097152"
    assert wanted_configs(USERS, 2)["cleanup.policy"] == "compact"


def test_min_insync_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="min_insync_replicas"):
        wanted_configs(COMMANDS, 0)


async def test_apply_refuses_min_insync_above_replication_before_connecting() -> None:
    # The bootstrap is unreachable: a ValueError (not a connection error) shows nothing was attempted.
    with pytest.raises(ValueError, match=r"min_insync_replicas \(3\) exceeds replication \(2\)"):
        await apply_topics(UNREACHABLE, replication=2, min_insync_replicas=3)


def test_cli_refuses_min_insync_above_replication_naming_the_option() -> None:
    result = CliRunner().invoke(
        app, ["topics", "apply", "--bootstrap", UNREACHABLE, "--replication", "1", "--min-insync-replicas", "2"]
    )
    assert result.exit_code == 2
    assert "--min-insync-replicas" in result.output


def test_cli_wait_fails_naming_the_broker_when_topics_never_appear() -> None:
    result = CliRunner().invoke(
        app, ["topics", "wait", "--bootstrap", UNREACHABLE, "--timeout", "0", "--interval", "0.1"]
    )
    assert result.exit_code == 1
    assert UNREACHABLE in result.output
