"""Logging: JSON lines off a terminal, carrying the directive and event ids bound per message; libraries'
log records and crashes (main thread, other threads, the event loop) as JSON lines too."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading

import pytest
import structlog

from shared.runtime.logging import LIBRARY_LOGGERS, bind_message_ids, configure_logging
from shared.runtime.settings import LogSettings


@pytest.fixture(autouse=True)
def _restore_structlog() -> None:
    """configure_logging binds structlog, the root handler and the crash hooks to the captured stderr, which is
    closed after the test."""
    root = logging.getLogger()
    handlers, level, hooks = root.handlers[:], root.level, (sys.excepthook, threading.excepthook)
    libraries = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in LIBRARY_LOGGERS
    }
    yield
    structlog.reset_defaults()
    root.handlers, sys.excepthook, threading.excepthook = handlers, *hooks
    root.setLevel(level)
    for name, (kept, propagate) in libraries.items():
        logging.getLogger(name).handlers, logging.getLogger(name).propagate = kept, propagate


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.strip().splitlines() if line.startswith("{")]


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


def test_library_log_records_are_json_lines_naming_their_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(format="json"), "impact")
    logging.getLogger("aiokafka.conn").warning("Unable to connect to node %s", 1)
    logging.getLogger("uvicorn.error").info("below WARNING: libraries' chatter stays out")
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        logging.getLogger("faststream").exception("consumer crashed")
    first, second = _lines(capsys.readouterr().err)
    assert first["event"] == "Unable to connect to node 1"
    assert (first["logger"], first["level"], first["service"]) == ("aiokafka.conn", "warning", "impact")
    assert "timestamp" in first
    assert second["level"] == "error" and "ConnectionError: refused" in second["exception"]


def test_a_crash_in_another_thread_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(format="json"), "agent")
    worker = threading.Thread(target=lambda: 1 / 0, name="fold")
    worker.start()
    worker.join()
    [line] = _lines(capsys.readouterr().err)
    assert line["event"] == "uncaught exception" and line["thread"] == "fold"
    assert "ZeroDivisionError" in line["exception"]


def _crash(code: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("{") for line in lines), done.stderr  # nothing but JSON lines
    return [json.loads(line) for line in lines]


def test_an_uncaught_exception_leaves_a_json_line_with_its_traceback() -> None:
    [line] = _crash(
        """
        from shared.runtime.logging import configure_logging
        from shared.runtime.settings import LogSettings
        configure_logging(LogSettings(format="json"), "enforcement")
        raise RuntimeError("boom")
        """
    )
    assert (line["event"], line["level"], line["service"]) == ("uncaught exception", "critical", "enforcement")
    assert "Traceback" in line["exception"] and "RuntimeError: boom" in line["exception"]


def test_an_exception_nobody_awaited_in_the_event_loop_is_a_json_line() -> None:
    lines = _crash(
        """
        import asyncio, gc
        from shared.runtime.logging import configure_logging
        from shared.runtime.settings import LogSettings

        async def fails():
            raise ValueError("lost")

        async def main():
            configure_logging(LogSettings(format="json"), "notifier")
            task = asyncio.ensure_future(fails())
            await asyncio.sleep(0.05)
            del task
            gc.collect()

        asyncio.run(main())
        """
    )
    [line] = [line for line in lines if "ValueError: lost" in line.get("exception", "")]
    assert line["event"] == "Task exception was never retrieved" and line["service"] == "notifier"
