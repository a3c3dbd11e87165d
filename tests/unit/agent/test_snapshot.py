"""The SQLite snapshot gives back exactly the state recorded: held sets, staging, early deltas, lifts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pyroaring import BitMap

from services.agent.command_effects import on_delta, on_lift, on_restrict
from services.agent.restriction_schema import PAGE_SIZE
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from shared.runtime.set_store import COMPACT_ROWS
from tests.unit.agent.builders import delta, lift, restrict

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _apply_all(store: RestrictionStore, state: Restrictions, commands: list) -> None:
    handlers = {"RestrictCommand": on_restrict, "LiftCommand": on_lift, "DeltaCommand": on_delta}
    for offset, command in enumerate(commands):
        outcome = handlers[command.type](state, command)
        if outcome.touched or outcome.held_changed:
            store.record(state, command.directive_id, outcome, 2, offset)


def test_a_reloaded_snapshot_equals_the_state_recorded(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "agent" / "c.sqlite3")
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1, 2], chunk=0, chunks=2, effective_from=START),
            restrict("D1", 1, "mythos-5", [3], chunk=1, chunks=2, effective_from=START),
            delta("D1", 1, 2, "fable-5", added=[9]),
            restrict("D2", 1, "fable-5", [5], chunk=0, chunks=2),
            restrict("D3", 1, "fable-5", [6]),
            lift("D3", 1),
        ],
    )
    store.close()
    loaded, offsets = RestrictionStore(tmp_path / "agent" / "c.sqlite3").load()
    assert loaded.held == state.held
    assert loaded.held["D1"].window.effective_from == START
    assert loaded.held["D1"].sets == {"fable-5": BitMap([1, 2]), "mythos-5": BitMap([3])}
    assert loaded.staging == state.staging and list(loaded.staging) == [("D2", 1)]
    assert loaded.pending == state.pending and list(loaded.pending[("D1", 1)]) == [2]
    assert loaded.lifted == {"D3": 1} and "D3" not in loaded.held
    assert offsets == {2: 6}


def test_applied_revisions_leave_no_staged_chunks_behind(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "s.sqlite3")
    state = Restrictions()
    _apply_all(
        store,
        state,
        [restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2), restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2)],
    )
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
    old.execute(
        "INSERT INTO staged VALUES ('D2', 1, 0, 2, NULL, NULL, 'fable-5', ?)", (bytes(BitMap([5]).serialize()),)
    )
    old.commit()
    old.close()
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held["D1"].on_stale == "keep" and loaded.held["D1"].sets == {"fable-5": BitMap([4])}
    assert loaded.staging[("D2", 1)].on_stale == "keep" and loaded.staging[("D2", 1)].missing == [1]


def _log_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM held_deltas").fetchone()[0]


def _set_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM held_sets").fetchone()[0]


def test_deltas_are_logged_not_rewritten_and_replayed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1, 2, 3], chunk=0, chunks=2),
            restrict("D1", 1, "mythos-5", [3, 4], chunk=1, chunks=2),
            delta("D1", 1, 1, "fable-5", added=[10], removed=[1]),
            delta("D1", 1, 2, "mythos-5", added=[11], removed=[4]),
            delta("D1", 1, 3, "fable-5", added=[12, 2], removed=[2]),  # in both: stays denied
            delta("D1", 1, 4, "gpt-x", added=[13]),  # a model this cluster was not sent: seq only
        ],
    )
    assert _log_rows(path) == 3  # gpt-x's delta only advanced the sequence (held in the held row)
    with sqlite3.connect(path) as db:  # the sets on disk are still the revision's chunks as they came in
        rows = db.execute("SELECT model, users FROM staged WHERE directive = 'D1' ORDER BY chunk").fetchall()
    assert [(model, BitMap.deserialize(blob)) for model, blob in rows] == [
        ("fable-5", BitMap([1, 2, 3])),
        ("mythos-5", BitMap([3, 4])),
    ]
    store.close()
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held == state.held
    assert loaded.held["D1"].sets == {"fable-5": BitMap([2, 3, 10, 12]), "mythos-5": BitMap([3, 11])}
    assert loaded.held["D1"].seq == 4 and loaded.held["D1"].digest == state.held["D1"].digest


def test_a_full_delta_log_is_compacted_into_the_sets(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    limit = COMPACT_ROWS
    _apply_all(
        store,
        state,
        [restrict("D1", 1, "fable-5", [0])]
        + [
            delta("D1", 1, seq, "fable-5", added=[seq], removed=[seq - 1] if seq % 3 == 0 else [])
            for seq in range(1, limit + 6)
        ],
    )
    assert 0 < _log_rows(path) < limit  # rewritten whole once the log was full, then logging again
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held == state.held and loaded.held["D1"].seq == limit + 5


def test_a_new_revision_empties_the_delta_log_and_a_lift_leaves_it_to_the_fold(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [restrict("D1", 1, "fable-5", [1]), delta("D1", 1, 1, "fable-5", added=[2]), restrict("D1", 2, "fable-5", [7])],
    )
    assert _log_rows(path) == 0
    assert store.load()[0].held["D1"].sets == {"fable-5": BitMap([7])}
    _apply_all(store, state, [delta("D1", 2, 1, "fable-5", added=[8]), lift("D1", 2)])
    assert "D1" not in store.load()[0].held and "D1" not in RestrictionStore(path).load()[0].held
    assert _log_rows(path) == 1  # the lift wrote only its tombstone: the sets go off the command path
    store.fold(state)
    assert _log_rows(path) == 0 and _set_rows(path) == 0 and "D1" not in RestrictionStore(path).load()[0].held


def test_only_a_chunk_staged_alone_skips_the_disk_sync(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "s.sqlite3")
    statements: list[str] = []
    store._db.set_trace_callback(lambda sql: statements.append(sql) if sql.startswith(("PRAGMA", "COMMIT")) else None)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2),  # staged only
            restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2),  # applies the revision
            lift("D1", 1),
        ],
    )
    # The staging commit runs at synchronous=NORMAL; the held revision and the lift at FULL.
    assert statements == ["PRAGMA synchronous=NORMAL", "COMMIT", "PRAGMA synchronous=FULL", "COMMIT", "COMMIT"]
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.load()[0].lifted == {"D1": 1}


def _table(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_a_revision_is_held_as_its_chunks_until_folded_into_sets(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1], chunk=0, chunks=3),
            restrict("D1", 1, "fable-5", [2], chunk=1, chunks=3),
            restrict("D1", 1, "mythos-5", [3], chunk=2, chunks=3),
            delta("D1", 1, 1, "fable-5", added=[7], removed=[1]),
        ],
    )
    assert _table(path, "held_sets") == 0 and _table(path, "staged") == 3  # the last chunk written on apply
    reloaded, _ = RestrictionStore(path).load()
    assert reloaded.held == state.held and reloaded.staging == {}  # held, not staging
    assert store.fold(state) == 1 and store.fold(state) == 0
    assert _table(path, "held_sets") == 2 and _table(path, "staged") == 0 and _log_rows(path) == 0
    folded, _ = RestrictionStore(path).load()
    assert folded.held == state.held and folded.held["D1"].sets == {"fable-5": BitMap([2, 7]), "mythos-5": BitMap([3])}


def test_a_held_revision_sent_again_with_other_content_never_mixes_chunks(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2),
            restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2),
            restrict("D1", 1, "fable-5", [5], chunk=0, chunks=2),
        ],
    )  # a re-send, half in
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held["D1"].sets == {"fable-5": BitMap([1, 2])}  # what is held is still the first content
    assert loaded.staging[("D1", 1)].parts == {0: ("fable-5", BitMap([5]))}  # only the re-sent chunk staged
    _apply_all(store, state, [restrict("D1", 1, "fable-5", [6], chunk=1, chunks=2)])
    assert RestrictionStore(path).load()[0].held["D1"].sets == {"fable-5": BitMap([5, 6])}


def test_a_lift_or_newer_revision_drops_the_chunks_that_held_the_older_one(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1]),
            restrict("D1", 2, "fable-5", [2]),
            restrict("D2", 1, "fable-5", [3]),
            lift("D2", 1),
        ],
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT directive, revision FROM staged").fetchall() == [("D1", 2)]
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held == state.held and set(loaded.held) == {"D1"} and loaded.staging == {}


def test_a_held_revision_sent_again_in_fewer_chunks_leaves_none_of_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2),
            restrict("D1", 1, "fable-5", [2], chunk=1, chunks=2),
            restrict("D1", 1, "fable-5", [9], chunk=0, chunks=1),
        ],
    )
    assert state.held["D1"].sets == {"fable-5": BitMap([9])}
    assert RestrictionStore(path).load()[0].held == state.held


def test_a_user_a_delta_removed_stays_removed_after_a_fold_and_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path)
    state = Restrictions()
    _apply_all(store, state, [restrict("D1", 1, "fable-5", [1, 2, 3]), delta("D1", 1, 1, "fable-5", removed=[2])])
    assert store.fold(state) == 1
    store.close()
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held["D1"].sets == {"fable-5": BitMap([1, 3])} and loaded.held == state.held


def test_a_compacted_set_replaces_the_chunks_still_stored_for_its_model(tmp_path: Path) -> None:
    """The log of one model is compacted while the revision's chunks are still its stored sets: on reload the
    written set wins over that model's chunks (a union would bring back the user the delta removed), and the
    other model is still its chunks plus its log."""
    path = tmp_path / "s.sqlite3"
    store = RestrictionStore(path, max_log_rows=1)
    state = Restrictions()
    _apply_all(
        store,
        state,
        [
            restrict("D1", 1, "fable-5", [1, 2, 3], chunk=0, chunks=2),
            restrict("D1", 1, "mythos-5", [3, 4], chunk=1, chunks=2),
            delta("D1", 1, 1, "fable-5", removed=[2]),  # logged
            delta("D1", 1, 2, "fable-5", added=[9]),  # the log is full: fable-5 written whole
            delta("D1", 1, 3, "mythos-5", removed=[4]),  # logged
        ],
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT model FROM held_sets").fetchall() == [("fable-5",)]
        assert db.execute("SELECT count(*) FROM staged WHERE directive = 'D1'").fetchone()[0] == 2
    store.close()
    loaded, _ = RestrictionStore(path).load()
    assert loaded.held["D1"].sets == {"fable-5": BitMap([1, 3, 9]), "mythos-5": BitMap([3])}
    assert loaded.held == state.held


def test_a_new_snapshot_is_written_in_large_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    new = RestrictionStore(tmp_path / "agent" / "new.sqlite3")
    new.close()
    page = sqlite3.connect(tmp_path / "agent" / "new.sqlite3").execute("PRAGMA page_size").fetchone()[0]
    assert page == PAGE_SIZE > 4096
    old_path = tmp_path / "agent" / "old.sqlite3"
    old = sqlite3.connect(old_path)  # a file written before: SQLite's default page size
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    store, state = RestrictionStore(old_path), Restrictions()
    _apply_all(store, state, [restrict("D1", 1, "fable-5", [1, 2]), delta("D1", 1, 1, "fable-5", added=[9])])
    store.close()
    reopened = RestrictionStore(old_path)
    assert reopened.load()[0].held["D1"].sets == {"fable-5": BitMap([1, 2, 9])}
    reopened.close()
    assert sqlite3.connect(old_path).execute("PRAGMA page_size").fetchone()[0] == 4096
