"""One set store for enforcement and the agent: the same operations under either's table names load the same
sets, equal to memory, across compactions, folds and reopening."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.agent.restriction_schema import HELD_SETS
from shared.contracts.bitmaps import apply_delta_in_place
from shared.runtime.set_store import SetStore, SetTables

USES = {"enforcement": SetTables(), "agent": HELD_SETS}
MODELS = ("fable-5", "mythos-5")


def _open(path: Path, tables: SetTables, max_rows: int) -> tuple[sqlite3.Connection, SetStore]:
    db = sqlite3.connect(path, isolation_level=None)
    return db, SetStore(db, tables, max_rows=max_rows)


def _script(seed: int) -> list[tuple[str, str, BitMap, BitMap]]:
    rng = random.Random(seed)
    steps = []
    for _ in range(60):
        kind = rng.choice(["delta"] * 8 + ["fold"])
        steps.append(
            (
                kind,
                rng.choice(MODELS),
                BitMap(rng.sample(range(200), rng.randint(0, 6))),
                BitMap(rng.sample(range(200), rng.randint(0, 6))),
            )
        )
    return steps


def _run(path: Path, tables: SetTables, seed: int, max_rows: int) -> tuple[dict, dict]:
    """Chunks as the base, then deltas (logged or compacted) and folds; memory and what a reopened store loads."""
    chunks = {"D1": {"fable-5": BitMap(range(0, 100)), "mythos-5": BitMap(range(50, 150))}}
    memory = {"D1": {m: BitMap(u) for m, u in chunks["D1"].items()}}
    db, store = _open(path, tables, max_rows)
    folded = False
    for seq, (kind, model, added, removed) in enumerate(_script(seed), start=1):
        db.execute("BEGIN")
        if kind == "fold":
            store.replace("D1", memory["D1"])
            folded = True
        else:
            apply_delta_in_place(memory["D1"][model], added, removed)
            store.append("D1", model, seq, added, removed, memory["D1"][model])
        db.execute("COMMIT")
        store.committed()
    db.close()
    db, reopened = _open(path, tables, max_rows)
    bases = None if folded else {"D1": {m: BitMap(u) for m, u in chunks["D1"].items()}}
    loaded = reopened.load(bases)
    db.close()
    return memory, loaded


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_rows", [1, 3, 256])
def test_both_uses_load_what_memory_holds(tmp_path: Path, seed: int, max_rows: int) -> None:
    results = {name: _run(tmp_path / f"{name}.sqlite3", tables, seed, max_rows) for name, tables in USES.items()}
    (memory, enforcement), (_, agent) = results["enforcement"], results["agent"]
    assert enforcement == agent == memory


def test_a_stored_set_replaces_the_chunks_of_its_model_only(tmp_path: Path) -> None:
    db, store = _open(tmp_path / "s.sqlite3", SetTables(), 256)
    store.replace("D1", {"fable-5": BitMap([1])})  # e.g. written by a compaction while the chunks remain
    chunks = {"D1": {"fable-5": BitMap([1, 2]), "mythos-5": BitMap([7])}}
    assert store.load(chunks) == {"D1": {"fable-5": BitMap([1]), "mythos-5": BitMap([7])}}
    db.close()


def test_without_new_models_a_delta_of_an_unheld_model_is_skipped(tmp_path: Path) -> None:
    db, store = _open(tmp_path / "s.sqlite3", HELD_SETS, 256)
    store.replace("D1", {"fable-5": BitMap([1])})
    store.append("D1", "gpt-x", 1, BitMap([5]), BitMap(), BitMap([5]))
    assert store.load(new_models=False) == {"D1": {"fable-5": BitMap([1])}}
    assert store.load() == {"D1": {"fable-5": BitMap([1]), "gpt-x": BitMap([5])}}
    db.close()
