"""A misspelt COUNTERMAND_* variable stops a service at start, naming it and the closest valid one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.agent.settings import AgentSettings
from services.impact.settings import ImpactSettings
from shared.runtime.settings import UnknownSetting, refuse_unknown_variables, unknown_variables


def test_a_misspelt_shared_setting_is_named_with_the_closest_valid_one() -> None:
    assert unknown_variables(ImpactSettings, {"COUNTERMAND_KAFKA_BOOTSTRAPS": "x"}) == [
        ("COUNTERMAND_KAFKA_BOOTSTRAPS", "COUNTERMAND_KAFKA_BOOTSTRAP")
    ]


def test_a_misspelt_own_setting_and_an_unknown_prefix_are_refused() -> None:
    with pytest.raises(UnknownSetting, match="COUNTERMAND_IMPACT_HTTP_PROT .did you mean COUNTERMAND_IMPACT_HTTP_PORT"):
        refuse_unknown_variables(ImpactSettings, {"COUNTERMAND_IMPACT_HTTP_PROT": "1"})
    assert unknown_variables(ImpactSettings, {"COUNTERMAND_ZZZ": "1"}) == [("COUNTERMAND_ZZZ", None)]


def test_valid_variables_and_other_services_variables_pass() -> None:
    shared_environment = {
        "COUNTERMAND_KAFKA_BOOTSTRAP": "k:9092",
        "COUNTERMAND_LOG_FORMAT": "json",
        "COUNTERMAND_AGENT_CLUSTER_ID": "us-east",
        "COUNTERMAND_IMPACT_URL": "http://impact",
        "COUNTERMAND_IMPACT_STATE_DIR": "/var/lib",
    }
    assert unknown_variables(ImpactSettings, shared_environment) == []
    assert unknown_variables(AgentSettings, {"COUNTERMAND_AGENT_MODELS": "fable-5"}) == []


def test_the_service_process_exits_2_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "COUNTERMAND_KAFKA_BOOTSTRAPS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "services.enforcement"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown setting COUNTERMAND_KAFKA_BOOTSTRAPS (did you mean COUNTERMAND_KAFKA_BOOTSTRAP?)" in done.stderr
