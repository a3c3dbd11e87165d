"""The SQLite snapshot gives back exactly the state recorded: held sets, staging, early deltas, lifts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pyroaring import BitMap

from services.agent.commands import on_delta, on_lift, on_restrict
from services.agent.restrictions import Restrictions
from services.agent.snapshot import Snapshot
from tests.unit.agent.builders import delta, lift, restrict

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _apply_all(store: Snapshot, state: Restrictions, commands: list) -> None:
    handlers = {"RestrictCommand": on_restrict, "LiftCommand": on_lift, "DeltaCommand": on_delta}
    for offset, command in enumerate(commands):
        outcome = handlers[command.type](state, command)
        if outcome.touched or outcome.held_changed:
            store.record(state, command.directive_id, outcome, 2, offset)


def test_a_reloaded_snapshot_equals_the_state_recorded(tmp_path: Path) -> None:
    store = Snapshot(tmp_path / "agent" / "c.sqlite3")
    state = Restrictions()
    _apply_all(store, state, [
        restrict("D1", 1, "fable-5", [1, 2], chunk=0, chunks=2, effective_from=START),
        restrict("D1", 1, "mythos-5", [3], chunk=1, chunks=2, effective_from=START),
        delta("D1", 1, 2, "fable-5", added=[9]),
        restrict("D2", 1, "fable-5", [5], chunk=0, chunks=2),
        restrict("D3", 1, "fable-5", [6]),
        lift("D3", 1),
    ])
    store.close()
    loaded, offsets = Snapshot(tmp_path / "agent" / "c.sqlite3").load()
    assert loaded.held == state.held
    assert loaded.held["D1"].window.effective_from == START
    assert loaded.held["D1"].sets == {"fable-5": BitMap([1, 2]), "mythos-5": BitMap([3])}
    assert loaded.staging == state.staging and list(loaded.staging) == [("D2", 1)]
    assert loaded.pending == state.pending and list(loaded.pending[("D1", 1)]) == [2]
    assert loaded.lifted == {"D3": 1} and "D3" not in loaded.held
    assert offsets == {2: 6}


def test_applied_revisions_leave_no_staged_chunks_behind(tmp_path: Path) -> None:
    store = Snapshot(tmp_path / "s.sqlite3")
    state = Restrictions()
    _apply_all(store, state, [restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2),
                              restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2)])
    loaded, _ = store.load()
    assert loaded.staging == {} and loaded.held["D1"].sets == {"fable-5": BitMap([1, 2])}


def test_a_snapshot_written_before_the_staleness_policy_existed_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE held (directive TEXT PRIMARY KEY, revision INTEGER NOT NULL, seq INTEGER NOT NULL,
                           effective_from TEXT, expires_at TEXT);
        CREATE TABLE held_sets (directive TEXT NOT NULL, model TEXT NOT NULL, users BLOB NOT NULL,
                                PRIMARY KEY (directive, model));
        CREATE TABLE staged (directive TEXT NOT NULL, revision INTEGER NOT NULL, chunk INTEGER NOT NULL,
                             chunks INTEGER NOT NULL, effective_from TEXT, expires_at TEXT,
                             model TEXT NOT NULL, users BLOB NOT NULL, PRIMARY KEY (directive, revision, chunk));
        INSERT INTO held VALUES ('D1', 2, 0, NULL, NULL);
    """)
    old.execute("INSERT INTO held_sets VALUES ('D1', 'fable-5', ?)", (bytes(BitMap([4]).serialize()),))
    old.execute("INSERT INTO staged VALUES ('D2', 1, 0, 2, NULL, NULL, 'fable-5', ?)",
                (bytes(BitMap([5]).serialize()),))
    old.commit()
    old.close()
    loaded, _ = Snapshot(path).load()
    assert loaded.held["D1"].on_stale == "keep" and loaded.held["D1"].sets == {"fable-5": BitMap([4])}
    assert loaded.staging[("D2", 1)].on_stale == "keep" and loaded.staging[("D2", 1)].missing == [1]
