"""Affected sets on disk: a delta appends a row to its model's log; a reopened store rebuilds the exact sets."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.enforcement.coordinator import Coordinator
from services.enforcement.store import EnforcementStore, text_key
from shared.contracts.bitmaps import set_digest
from tests.unit.enforcement.scenario import SETS, assessment, at, core, delta, heartbeat

KEY = ("D-1", 1, "restrict")
MODELS = sorted(SETS)


def enforcing(store: EnforcementStore, fold: bool = True) -> Coordinator:
    """A core with D-1 in force on one cluster serving both models, saved through the store; its sets
    written by the deadline loop's fold() unless fold=False (then only the assessment's parts hold them)."""
    coordinator = core()
    assessed, chunks = assessment()
    for message in [heartbeat("us-east", *MODELS), assessed, *chunks]:
        handler = {"AgentHeartbeat": "on_heartbeat", "ImpactAssessed": "on_assessed"}.get(message.type, "on_chunk")
        store.save(getattr(coordinator, handler)(message, at(0)), coordinator)
    assert KEY in coordinator.rollouts
    if fold:
        assert store.fold(coordinator) == 1
    return coordinator


def deltas(count: int, seed: int = 1) -> list:
    """Registry-like changes on both models, adding and removing ids, each with the digest after it."""
    rng, shadow, out = random.Random(seed), {m: BitMap(s) for m, s in SETS.items()}, []
    for seq in range(1, count + 1):
        model = MODELS[seq % 2]
        added = BitMap(rng.randrange(2_000) for _ in range(rng.randint(0, 3)))
        removed = BitMap(rng.sample(sorted(shadow[model]), min(len(shadow[model]), rng.randint(0, 2))))
        shadow[model] = (shadow[model] - removed) | added
        out.append(delta(seq, model, added, removed, shadow[model]))
    return out


def apply(coordinator: Coordinator, store: EnforcementStore, messages: list) -> None:
    for message in messages:
        outcome = coordinator.on_delta(message, at(1))
        assert outcome.deltas, f"delta {message.seq} was not applied"
        store.save(outcome, coordinator)


def rows(folder: Path, table: str) -> int:
    with sqlite3.connect(folder / "enforcement.sqlite3") as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def base(folder: Path, model: str) -> BitMap:
    with sqlite3.connect(folder / "enforcement.sqlite3") as db:
        blob = db.execute("SELECT bitmap FROM sets WHERE key = ? AND model = ?", (text_key(KEY), model)).fetchone()
    return BitMap.deserialize(blob[0])


def reopened(folder: Path, **options) -> Coordinator:
    store = EnforcementStore(folder, **options)
    try:
        return store.load(core())
    finally:
        store.close()


def assert_same_sets(restarted: Coordinator, coordinator: Coordinator) -> None:
    assert restarted.sets[KEY] == coordinator.sets[KEY]
    rollout = coordinator.rollouts[KEY]
    assert {m: set_digest(s) for m, s in restarted.sets[KEY].items()} == rollout.model_digests
    assert restarted.rollouts[KEY].delta_seq == rollout.delta_seq


def test_deltas_append_rows_and_a_reopened_store_rebuilds_the_exact_sets(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store)
    apply(coordinator, store, deltas(40))
    store.close()

    assert rows(tmp_path, "set_deltas") == 40
    assert base(tmp_path, "fable-5") == SETS["fable-5"]  # the base set was not rewritten
    assert coordinator.sets[KEY] != SETS
    assert_same_sets(reopened(tmp_path), coordinator)


def test_crossing_the_row_bound_compacts_into_the_base_with_the_same_sets(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path, compact_rows=5)
    coordinator = enforcing(store)
    apply(coordinator, store, deltas(23))
    store.close()

    assert rows(tmp_path, "set_deltas") <= 2 * 5  # at most a bound's worth per model, not 23
    assert base(tmp_path, "fable-5") != SETS["fable-5"]  # folded into the base
    assert_same_sets(reopened(tmp_path), coordinator)
    assert_same_sets(reopened(tmp_path, compact_rows=1), coordinator)  # another bound reads the same data


def test_a_delta_large_against_its_base_is_folded_in_at_once(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store)
    scattered = BitMap(range(10_000, 4_000_000, 97))  # ~41k ids in array containers: far above 64 KiB
    after = SETS["fable-5"] | scattered
    apply(coordinator, store, [delta(1, "fable-5", scattered, BitMap(), after)])
    store.close()

    assert rows(tmp_path, "set_deltas") == 0 and base(tmp_path, "fable-5") == after
    assert_same_sets(reopened(tmp_path), coordinator)


def test_a_delta_lost_by_a_failed_save_is_written_whole_by_the_next_save(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store)
    first, second, third = deltas(3)
    apply(coordinator, store, [first])
    outcome = coordinator.on_delta(second, at(2))
    outcome.events.append(Unwritable())
    with pytest.raises(OSError):
        store.save(outcome, coordinator)
    assert not coordinator.on_delta(second, at(3)).deltas  # redelivered: memory already holds it

    apply(coordinator, store, [third])
    store.close()
    assert_same_sets(reopened(tmp_path), coordinator)


def test_a_superseded_rollout_drops_its_sets_and_their_logs(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store)
    apply(coordinator, store, deltas(6))
    assessed, chunks = assessment(revision=2)
    for message in [assessed, *chunks]:
        handler = "on_assessed" if message.type == "ImpactAssessed" else "on_chunk"
        store.save(getattr(coordinator, handler)(message, at(5)), coordinator)
    store.close()

    assert not coordinator.rollouts[KEY].active and KEY not in coordinator.sets
    assert rows(tmp_path, "set_deltas") == 0
    restarted = reopened(tmp_path)
    assert KEY not in restarted.sets and restarted.sets[("D-1", 2, "restrict")] == SETS


OLD_SCHEMA = """
CREATE TABLE clusters (cluster_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE rollouts (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE sets (key TEXT NOT NULL, model TEXT NOT NULL, bitmap BLOB NOT NULL, PRIMARY KEY (key, model));
CREATE TABLE parts (key TEXT NOT NULL, part TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (key, part));
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, body TEXT NOT NULL);
"""


def test_a_database_from_before_the_delta_log_opens_and_takes_deltas(tmp_path: Path) -> None:
    earlier = core()  # the state an older service left behind: whole sets, no delta table
    assessed, chunks = assessment()
    for message in [heartbeat("us-east", *MODELS), assessed, *chunks]:
        handler = {"AgentHeartbeat": "on_heartbeat", "ImpactAssessed": "on_assessed"}.get(message.type, "on_chunk")
        getattr(earlier, handler)(message, at(0))
    with sqlite3.connect(tmp_path / "enforcement.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO clusters VALUES (?, ?)", ("us-east", earlier.clusters["us-east"].model_dump_json()))
        db.execute("INSERT INTO rollouts VALUES (?, ?)", (text_key(KEY), earlier.rollouts[KEY].model_dump_json()))
        db.executemany(
            "INSERT INTO sets VALUES (?, ?, ?)",
            [(text_key(KEY), m, s.serialize()) for m, s in earlier.sets[KEY].items()],
        )
    db.close()

    store = EnforcementStore(tmp_path)
    coordinator = store.load(core())
    assert coordinator.sets[KEY] == SETS and coordinator.rollouts[KEY].active
    apply(coordinator, store, deltas(8))
    store.close()
    assert rows(tmp_path, "set_deltas") == 8
    assert_same_sets(reopened(tmp_path), coordinator)


class Unwritable:
    """An outbox message whose encoding fails (a stand-in for a disk error inside the transaction)."""

    type = "EnforcementProgressed"

    def model_dump_json(self) -> str:
        raise OSError("disk full")


def test_an_id_both_added_and_removed_by_a_delta_stays_denied_as_impact_and_agents_hold_it(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store)
    model = MODELS[0]
    both = BitMap([min(SETS[model]), 1_999])  # one already in the set, one new: each added and removed
    expected = (SETS[model] - both) | both
    apply(coordinator, store, [delta(1, model, both, both, expected)])
    store.close()
    assert both.issubset(coordinator.sets[KEY][model]) and coordinator.sets[KEY][model] == expected
    assert reopened(tmp_path).sets[KEY][model] == expected


def test_a_started_rollout_is_rebuilt_from_its_parts_and_logged_deltas_until_folded(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store, fold=False)
    assert rows(tmp_path, "sets") == 0 and rows(tmp_path, "parts") > 0  # nothing written twice on the way out
    apply(coordinator, store, deltas(12))
    store.close()
    assert_same_sets(reopened(tmp_path), coordinator)  # parts, then the delta log

    store = EnforcementStore(tmp_path)
    restarted = store.load(core())
    assert restarted.assemblies == {}  # the parts of a started rollout are not an assessment to start again
    assert store.fold(restarted) == 1 and store.fold(restarted) == 0
    store.close()
    assert rows(tmp_path, "parts") == 0 and rows(tmp_path, "set_deltas") == 0 and rows(tmp_path, "sets") == 2
    assert_same_sets(reopened(tmp_path), coordinator)


def test_a_delta_that_came_before_the_rollout_started_is_in_the_sets_rebuilt_from_parts(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = core()
    assessed, chunks = assessment()
    model = MODELS[0]
    early = delta(
        1,
        model,
        BitMap([1_500]),
        BitMap([min(SETS[model])]),
        (SETS[model] - BitMap([min(SETS[model])])) | BitMap([1_500]),
    )
    for message in [heartbeat("us-east", *MODELS), assessed, early, *chunks]:
        handler = {
            "AgentHeartbeat": "on_heartbeat",
            "ImpactAssessed": "on_assessed",
            "AffectedSetDelta": "on_delta",
        }.get(message.type, "on_chunk")
        store.save(getattr(coordinator, handler)(message, at(0)), coordinator)
    assert 1_500 in coordinator.sets[KEY][model]
    store.close()
    assert_same_sets(reopened(tmp_path), coordinator)


def test_a_rollout_retired_before_its_fold_leaves_no_parts(tmp_path: Path) -> None:
    store = EnforcementStore(tmp_path)
    coordinator = enforcing(store, fold=False)
    lifted, lift_chunks = assessment(action="lift")
    for message in [lifted, *lift_chunks]:
        handler = coordinator.on_assessed if message.type == "ImpactAssessed" else coordinator.on_chunk
        store.save(handler(message, at(1)), coordinator)
    assert not coordinator.rollouts[KEY].active
    store.fold(coordinator)
    store.close()
    assert rows(tmp_path, "parts") == 0 and rows(tmp_path, "sets") == 0
    assert KEY not in reopened(tmp_path).sets
