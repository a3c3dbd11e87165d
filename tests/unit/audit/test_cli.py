"""`countermand audit` on a ledger file: verify, report and replay, with their exit codes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.audit.cli import app
from services.audit.ledger import Ledger
from services.audit.record import Record
from tests.unit.audit.records import directive_story

runner = CliRunner()


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.append(directive_story("EXP-42", notices=5) + [Record("identity.users.v1", 0, 0, b"7", None)])
    ledger.close()
    return path


def sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement, args)


def test_verify_reports_an_intact_ledger_with_its_head(ledger_file: Path) -> None:
    result = runner.invoke(app, ["verify", "--no-kafka", "--ledger", str(ledger_file)])
    assert result.exit_code == 0, result.output
    assert "9 entries" in result.output and "head hash" in result.output


def test_verify_fails_naming_the_tampered_seq(ledger_file: Path) -> None:
    sql(ledger_file, "UPDATE entries SET value = replace(value, '0.21', '0.01') WHERE seq = 3")
    result = runner.invoke(app, ["verify", "--no-kafka", "--ledger", str(ledger_file)])
    assert result.exit_code == 1
    assert "seq 3" in result.output and "modified" in result.output


def test_verify_fails_on_a_deleted_entry(ledger_file: Path) -> None:
    sql(ledger_file, "DELETE FROM entries WHERE seq = 5")
    result = runner.invoke(app, ["verify", "--no-kafka", "--ledger", str(ledger_file)])
    assert result.exit_code == 1 and "seq 6" in result.output


def test_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--no-kafka", "--ledger", str(tmp_path / "nope.sqlite")])
    assert result.exit_code == 2 and "no audit ledger" in " ".join(result.output.split())  # rich may wrap
    assert not (tmp_path / "nope.sqlite").exists()


def test_report_lists_the_timeline(ledger_file: Path) -> None:
    result = runner.invoke(app, ["timeline", "EXP-42", "--ledger", str(ledger_file)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    positions = [
        text.index(s)
        for s in (
            "DirectiveIssued rev 1",
            "ImpactAssessed restrict: 61,234 users",
            "DirectiveEnforced: us-east 0.21s",
            "NotificationDelivered x 5",
        )
    ]
    assert positions == sorted(positions)


def test_report_for_an_unknown_directive_exits_non_zero(ledger_file: Path) -> None:
    result = runner.invoke(app, ["timeline", "EXP-NOPE", "--ledger", str(ledger_file)])
    assert result.exit_code == 1 and "EXP-NOPE" in result.output


def test_replay_prints_every_recorded_event_in_order_as_json(ledger_file: Path) -> None:
    result = runner.invoke(app, ["replay", "EXP-42", "--ledger", str(ledger_file), "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [e["type"] for e in events] == ["DirectiveIssued", "ImpactAssessed", "DirectiveEnforced"] + [
        "NotificationDelivered"
    ] * 5
    assert events[0]["value"]["directive_id"] == "EXP-42" and len(events[0]["hash"]) == 64


def test_replay_for_an_unknown_directive_exits_non_zero(ledger_file: Path) -> None:
    assert runner.invoke(app, ["replay", "EXP-NOPE", "--ledger", str(ledger_file)]).exit_code == 1


def test_a_file_that_is_not_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("not a database")
    result = runner.invoke(app, ["timeline", "EXP-1", "--ledger", str(bogus)])
    assert result.exit_code == 2 and "not an audit ledger" in " ".join(result.output.split())  # rich may wrap
