"""The local stacks' layout and records: the ledger where the audit CLI looks, pids checked before a signal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.demo import demo_stack
from cli.local_stack import STATE_DIR
from cli.stack_record import StackRecord, Started, stop_processes
from devtools import ROOT
from services.audit.settings import AuditSettings


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("COUNTERMAND_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT)


def test_make_run_keeps_the_ledger_where_the_audit_cli_looks_by_default(no_settings: None, tmp_path: Path) -> None:
    stack = demo_stack("127.0.0.1:9", tmp_path)
    assert stack.ledger == (ROOT / AuditSettings().ledger_path).resolve() == STATE_DIR / "audit" / "ledger.sqlite"


def test_the_audit_service_of_a_stack_writes_the_ledger_the_stack_names(
    no_settings: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = demo_stack("127.0.0.1:9", tmp_path / "run", tmp_path / "state")
    monkeypatch.setenv("COUNTERMAND_AUDIT_STATE_DIR", stack._env("audit")["COUNTERMAND_AUDIT_STATE_DIR"])
    assert AuditSettings().ledger_path == stack.ledger


def _sleeper(*tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", *tag], start_new_session=True, stdin=subprocess.DEVNULL
    )


def test_stop_signals_a_recorded_service_and_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    service, stranger = _sleeper("services.intake"), _sleeper()
    try:
        record = StackRecord(tmp_path, processes=[Started("intake", "intake", service.pid, 1, "log")])
        record.processes.append(Started("audit", "audit", stranger.pid, 2, "log"))  # its pid now runs something else
        record.save()
        loaded = StackRecord.load(tmp_path)
        assert loaded == record and [p.name for p in loaded.alive()] == ["intake"]
        assert stop_processes(loaded.processes, timeout_s=10) == ["intake"]
        assert service.wait(10) is not None
        time.sleep(0.2)
        assert stranger.poll() is None
    finally:
        for process in (service, stranger):
            process.kill()
            process.wait()
