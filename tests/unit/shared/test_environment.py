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


def test_the_auth_variables_are_known_to_every_service_and_the_mode_by_its_own_name() -> None:
    auth = {
        "COUNTERMAND_AUTH": "off",
        "COUNTERMAND_AUTH_JWKS_FILE": "/x",
        "COUNTERMAND_AUTH_ISSUER": "https://idp",
        "COUNTERMAND_AUTH_API_KEYS_FILE": "/y",
    }
    assert unknown_variables(ImpactSettings, auth) == []
    assert [name for name, _ in unknown_variables(AgentSettings, {"COUNTERMAND_AUTH_MODE": "off"})] == [
        "COUNTERMAND_AUTH_MODE"  # the switch is COUNTERMAND_AUTH itself
    ]


@pytest.mark.parametrize("service", ["intake", "impact", "agent"])
def test_a_service_with_an_api_refuses_to_start_without_an_auth_config(service: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "COUNTERMAND_AGENT_CLUSTER_ID": "us-east", "COUNTERMAND_AGENT_MODELS": "fable-5"}
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"{service}: cannot start:" in done.stderr and "authentication is on but no" in done.stderr
    assert "COUNTERMAND_AUTH=off for local play only" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("OTEL_METRICS_EXPORTER", "prometheus"), ("OTEL_METRIC_EXPORT_INTERVAL", "soon")]
)
def test_a_standard_otel_variable_the_process_cannot_honour_stops_it_at_start(variable: str, value: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "OTEL_METRICS_EXPORTER": "otlp", variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "services.enforcement"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"enforcement: cannot start: {variable}={value!r}" in done.stderr
