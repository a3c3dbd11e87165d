"""How a stack provisions the agents' record keys: each agent signs as its cluster, enforcement trusts exactly
those keys, each naming its cluster; a start without the key set is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stack import Stack
from services.enforcement.app import build
from services.enforcement.settings import EnforcementSettings
from shared.runtime.record_signing import SigningSettings
from shared.runtime.signing import KeySet


def test_each_agent_signs_as_its_cluster_and_enforcement_trusts_each_for_its_cluster(tmp_path: Path) -> None:
    stack = Stack("127.0.0.1:9", tmp_path)
    agent = stack.signing_env("agent", cluster="eu-west")
    assert agent["COUNTERMAND_SIGNING_KEY_ID"] == "agent-eu-west-dev"
    keys = KeySet.from_file(Path(stack.signing_env("enforcement")["COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"]))
    for cluster in ("us-east", "eu-west", "ap-south"):
        key = keys.get(f"agent-{cluster}-dev")
        assert key is not None and key.subject == cluster
        assert key.public_key == stack.record_signer(f"agent-{cluster}").public().public_key


def test_an_agent_without_a_cluster_has_no_key_to_sign_with(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass cluster="):
        Stack("127.0.0.1:9", tmp_path).signing_env("agent")


def test_enforcement_with_signing_on_and_no_agent_keys_refuses_to_start(tmp_path: Path) -> None:
    env = Stack("127.0.0.1:9", tmp_path).signing_env("enforcement")
    signing = SigningSettings(
        mode="on",
        key_file=Path(env["COUNTERMAND_SIGNING_KEY_FILE"]),
        key_id=env["COUNTERMAND_SIGNING_KEY_ID"],
        trusted_keys_file=Path(env["COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE"]),
    )
    with pytest.raises(ValueError, match="COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"):
        build(EnforcementSettings(state_dir=tmp_path, signing=signing))
