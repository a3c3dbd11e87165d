"""Logging: JSON lines off a terminal, carrying the directive and event ids bound per message."""

from __future__ import annotations

import json

import pytest
import structlog

from shared.runtime.logging import bind_message_ids, configure_logging
from shared.runtime.settings import LogSettings


@pytest.fixture(autouse=True)
def _restore_structlog() -> None:
    """configure_logging binds structlog to the captured stderr, which is closed after the test."""
    yield
    structlog.reset_defaults()


def test_json_lines_carry_the_bound_directive_and_event_ids(capsys: pytest.CaptureFixture[str]) -> None:
    log = configure_logging(LogSettings(format="json"), "impact")
    bind_message_ids("EXP-2026-001", "evt-1")
    try:
        log.info("directive assessed", users=3)
    finally:
        structlog.contextvars.clear_contextvars()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "directive assessed" and line["service"] == "impact"
    assert line["correlation_id"] == "EXP-2026-001" and line["event_id"] == "evt-1" and line["users"] == 3


def test_levels_below_the_setting_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    log = configure_logging(LogSettings(format="json", level="WARNING"), "audit")
    log.info("quiet")
    log.warning("loud")
    events = [json.loads(x)["event"] for x in capsys.readouterr().err.strip().splitlines()]
    assert events == ["loud"]
