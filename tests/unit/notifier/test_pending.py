"""Halves of a pair survive a restart; dispatched keys stay done."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.notifier.delivery_ledger import open_database
from services.notifier.delta_pairing import Delta
from services.notifier.pending import DeltaStore, PendingStore
from shared.contracts.bitmaps import scope_digest
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "lift")


def test_a_set_stored_before_a_restart_pairs_with_a_later_confirmation(tmp_path: Path) -> None:
    store = PendingStore(open_database(tmp_path / "n.db"))
    store.assessed(KEY, 1, {0: 5})
    store.chunk(KEY, 0, 1, "fable-5", BitMap([4, 8]))
    pairing = PendingStore(open_database(tmp_path / "n.db")).restore()
    ready = pairing.enforced(KEY, "enf-1")
    assert ready is not None
    assert list(ready.sets["fable-5"]) == [4, 8] and ready.registry_offsets == {0: 5}


def test_a_complete_pair_stored_before_a_restart_is_ready_after_it(tmp_path: Path) -> None:
    store = PendingStore(open_database(tmp_path / "n.db"))
    store.enforced(KEY, "enf-1")
    store.assessed(KEY, 1, {})
    store.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    assert [r.key for r in PendingStore(open_database(tmp_path / "n.db")).restore().ready()] == [KEY]


def test_a_dispatched_key_stays_done_after_a_restart(tmp_path: Path) -> None:
    store = PendingStore(open_database(tmp_path / "n.db"))
    store.enforced(KEY, "enf-1")
    store.assessed(KEY, 1, {})
    store.chunk(KEY, 0, 1, "fable-5", BitMap([1]))
    store.dispatched(KEY)
    pairing = PendingStore(open_database(tmp_path / "n.db")).restore()
    assert pairing.ready() == []
    assert pairing.chunk(KEY, 0, 1, "fable-5", BitMap([1])) is None


def test_deltas_and_confirmations_survive_a_restart_and_told_ones_stay_told(tmp_path) -> None:
    key = AssessmentKey("EXP-1", 1, "restrict")
    store = DeltaStore(open_database(tmp_path / "d.db"))
    store.assessed(key, {"fable-5": "f0"})
    store.delta(key, Delta(1, "fable-5", "f1", BitMap([7]), BitMap()))
    store.delta(key, Delta(2, "fable-5", "f2", BitMap([8]), BitMap()))
    store.confirmed(key, scope_digest({"fable-5": "f2"}), "progress")
    store.sent(key, 1)
    [(seq, ready)] = DeltaStore(open_database(tmp_path / "d.db")).restore().ready()
    assert seq == 2 and {m: list(u) for m, u in ready.added.items()} == {"fable-5": [8]}
