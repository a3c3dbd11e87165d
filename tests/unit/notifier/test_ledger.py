"""The ledger records each notice's outcome and channel once; what is recorded is never sent again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.notifier.delivery_ledger import Ledger, Recorded, open_database
from services.notifier.notices import notices_for
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "restrict")


def _delivered(users: list[int], channel: str = "email") -> list[Recorded]:
    return [Recorded(n, "delivered", channel) for n in notices_for(KEY, {"fable-5": BitMap(users)})]


def test_recorded_outcomes_are_in_the_ledger_with_their_channel(tmp_path: Path) -> None:
    ledger = Ledger(open_database(tmp_path / "notifier.db"))
    failed = [Recorded(n, "failed", None, "no record") for n in notices_for(KEY, {"fable-5": BitMap([3])})]
    ledger.record(_delivered([1], "email") + _delivered([2], "webhook") + failed)
    assert ledger.sent(["EXP-1:1:restricted:1", "EXP-1:1:restricted:3", "EXP-1:1:restricted:4"]) == {
        "EXP-1:1:restricted:1",
        "EXP-1:1:restricted:3",
    }
    entries = {e.recipient: (e.status, e.channel, e.reason) for e in ledger.unannounced(KEY)}
    assert entries == {
        1: ("delivered", "email", None),
        2: ("delivered", "webhook", None),
        3: ("failed", None, "no record"),
    }


def test_an_outcome_recorded_twice_aborts_the_whole_batch(tmp_path: Path) -> None:
    ledger = Ledger(open_database(tmp_path / "notifier.db"))
    ledger.record(_delivered([1]))
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record(_delivered([2, 1]))
    assert ledger.sent(["EXP-1:1:restricted:2"]) == set()


def test_a_ledger_from_before_channels_gains_the_column(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "notifier.db") as db:
        db.execute(
            "CREATE TABLE ledger (notification_id TEXT PRIMARY KEY, directive_id TEXT NOT NULL, revision INTEGER "
            "NOT NULL, action TEXT NOT NULL, recipient INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, "
            "announced INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO ledger VALUES ('EXP-1:1:restricted:9', 'EXP-1', 1, 'restricted', 9, 'delivered', NULL, 0)"
        )
    ledger = Ledger(open_database(tmp_path / "notifier.db"))
    ledger.record(_delivered([1]))
    assert {(e.recipient, e.channel) for e in ledger.unannounced(KEY)} == {(9, None), (1, "email")}


def test_outcomes_not_yet_announced_are_remembered_until_marked(tmp_path: Path) -> None:
    ledger = Ledger(open_database(tmp_path / "notifier.db"))
    ledger.record(_delivered([1, 2]))
    assert {e.recipient for e in ledger.unannounced(KEY)} == {1, 2}
    ledger.mark_announced(["EXP-1:1:restricted:1"])
    assert [e.recipient for e in ledger.unannounced(KEY)] == [2]
