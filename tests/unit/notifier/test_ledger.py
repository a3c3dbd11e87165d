"""The ledger and the outbox move together: a notice is recorded and written once, or neither."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.notifier.delivery_ledger import Ledger, open_database
from services.notifier.notices import Contact, notices_for
from services.notifier.sink import Letter, OutboxSink
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "restrict")


def _letters(users: list[int]) -> list[Letter]:
    return [
        Letter(n, Contact(f"u{n.recipient}@example.com", "en"), "s", "b")
        for n in notices_for(KEY, {"fable-5": BitMap(users)})
    ]


def _open(tmp_path: Path) -> tuple[Ledger, OutboxSink]:
    ledger = Ledger(open_database(tmp_path / "notifier.db"))
    sink = OutboxSink(tmp_path / "outbox.jsonl")
    sink.recover(ledger.checkpoint(sink.name))
    return ledger, sink


def test_recorded_notices_are_in_the_ledger_and_the_outbox(tmp_path: Path) -> None:
    ledger, sink = _open(tmp_path)
    letters = _letters([1, 2])
    failed = [(n, "no record") for n in notices_for(KEY, {"fable-5": BitMap([3])})]
    ledger.record(letters, failed, sink)
    assert ledger.sent(["EXP-1:1:restricted:1", "EXP-1:1:restricted:3", "EXP-1:1:restricted:4"]) == {
        "EXP-1:1:restricted:1",
        "EXP-1:1:restricted:3",
    }
    lines = sink.records()
    assert [line["recipient"] for line in lines] == [1, 2]
    assert set(lines[0]) == {
        "notification_id",
        "recipient",
        "email",
        "locale",
        "directive_id",
        "revision",
        "action",
        "models",
        "subject",
        "body",
    }
    assert lines[0]["models"] == ["fable-5"] and lines[0]["action"] == "restricted"


def test_a_failed_commit_takes_the_sink_write_back(tmp_path: Path) -> None:
    ledger, sink = _open(tmp_path)
    ledger.record(_letters([1]), [], sink)
    with pytest.raises(Exception):
        ledger.record(_letters([2, 1]), [], sink)  # 1 is already in the ledger: the batch aborts
    assert [line["recipient"] for line in sink.records()] == [1]
    assert ledger.sent(["EXP-1:1:restricted:2"]) == set()


def test_a_crash_between_sink_write_and_commit_is_cut_back_at_restart(tmp_path: Path) -> None:
    ledger, sink = _open(tmp_path)
    ledger.record(_letters([1]), [], sink)
    sink.write(_letters([2]))  # written, but the process dies before the ledger commits
    assert len(sink.records()) == 2
    ledger, sink = _open(tmp_path)  # restart
    assert [line["recipient"] for line in sink.records()] == [1]
    ledger.record(_letters([2]), [], sink)  # sent again, once
    assert [line["recipient"] for line in sink.records()] == [1, 2]
    assert all(json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines())


def test_outcomes_not_yet_announced_are_remembered_until_marked(tmp_path: Path) -> None:
    ledger, sink = _open(tmp_path)
    ledger.record(_letters([1, 2]), [], sink)
    assert {e.recipient for e in ledger.unannounced(KEY)} == {1, 2}
    ledger.mark_announced(["EXP-1:1:restricted:1"])
    assert [e.recipient for e in ledger.unannounced(KEY)] == [2]
