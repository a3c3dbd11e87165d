"""Affected sets on disk: a base bitmap per rollout and model, plus the log of deltas applied since.

A delta appends one small row (the roaring bytes of its added and removed ids) instead of rewriting
the model's set, which for a million users means megabytes written and fsynced per delta. Loading
applies a model's rows in seq order to its base and gets exactly the set held in memory: the core
applies a model's deltas in increasing seq, and each row commits with the rollout recording its seq.
When a log grows past a bound (rows, or bytes against its base) the base is rewritten from memory and
the log dropped, in the same transaction. The caller owns the transaction: it calls repair() first
and reports the end (committed() or forget()).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from pyroaring import BitMap

from shared.contracts.bitmaps import apply_delta_in_place

SCHEMA = """
CREATE TABLE IF NOT EXISTS sets (key TEXT NOT NULL, model TEXT NOT NULL, bitmap BLOB NOT NULL,
                                 PRIMARY KEY (key, model));
CREATE TABLE IF NOT EXISTS set_deltas (key TEXT NOT NULL, model TEXT NOT NULL, seq INTEGER NOT NULL,
                                       added BLOB NOT NULL, removed BLOB NOT NULL,
                                       PRIMARY KEY (key, model, seq));
"""
COMPACT_ROWS = 256  # replaying this many small rows on load takes milliseconds
COMPACT_FRACTION = 4  # a log larger than a quarter of its base's bytes is folded into the base...
COMPACT_MIN_BYTES = 64 * 1024  # ...but a log may always hold this much: a tiny base is not rewritten per delta


@dataclass
class LogSize:
    """How much one model's delta log holds, and the bytes of the base it applies to."""

    rows: int
    bytes: int
    base_bytes: int

    def full_after(self, row_bytes: int, max_rows: int) -> bool:
        """Whether appending a row of row_bytes would take the log past its bound."""
        limit = max(self.base_bytes // COMPACT_FRACTION, COMPACT_MIN_BYTES)
        return self.rows + 1 > max_rows or self.bytes + row_bytes > limit


class SetStore:
    """The sets and set_deltas tables of one SQLite connection; keys are the store's text keys."""

    def __init__(self, db: sqlite3.Connection, max_rows: int = COMPACT_ROWS) -> None:
        self._db = db
        self._db.executescript(SCHEMA)  # a database from before the delta log gains its table here
        self.max_rows = max_rows
        self._sizes: dict[tuple[str, str], LogSize] = {}  # per log, as written so far (cleared on a rollback)
        self._stale: set[tuple[str, str]] = set()  # memory holds a delta whose row was rolled back
        self._rewritten: set[tuple[str, str]] = set()  # bases written by the open transaction

    def replace(self, key: str, sets: dict[str, BitMap]) -> None:
        """Rewrite every model's set of a rollout (none: a retired rollout's sets go), dropping their logs."""
        self._db.execute("DELETE FROM sets WHERE key = ?", (key,))
        self._db.execute("DELETE FROM set_deltas WHERE key = ?", (key,))
        for known in [k for k in self._sizes if k[0] == key]:
            del self._sizes[known]
        for model, users in sets.items():
            self._write_base(key, model, users)

    def append(self, key: str, model: str, seq: int, added: BitMap, removed: BitMap, current: BitMap) -> None:
        """Record one applied delta; `current` is the model's set after it (written instead when compacting)."""
        row = (added.serialize(), removed.serialize())
        size = self._size(key, model)
        if size.full_after(len(row[0]) + len(row[1]), self.max_rows):
            self._rewrite(key, model, current)
            return
        self._db.execute("INSERT INTO set_deltas VALUES (?, ?, ?, ?, ?)", (key, model, seq, *row))
        size.rows += 1
        size.bytes += len(row[0]) + len(row[1])

    def repair(self, current: Callable[[str, str], BitMap | None]) -> None:
        """Rewrite from memory (current(key, model)) each set whose last change was rolled back."""
        for key, model in sorted(self._stale):
            users = current(key, model)
            if users is None:  # no longer held: its rollout's sets were replaced or dropped
                self._rewritten.add((key, model))
            else:
                self._rewrite(key, model, users)

    def committed(self) -> None:
        """The open transaction committed: its rewritten bases hold everything memory does."""
        self._stale -= self._rewritten
        self._rewritten.clear()

    def forget(self, stale: set[tuple[str, str]]) -> None:
        """A transaction rolled back: drop the cached log sizes (read again when needed).

        The core already applied the deltas whose rows were lost and ignores them when redelivered,
        so those sets are rewritten whole from memory by the next transaction (repair()).
        """
        self._sizes.clear()
        self._rewritten.clear()
        self._stale |= stale

    def load(self, bases: dict[str, dict[str, BitMap]] | None = None) -> dict[str, dict[str, BitMap]]:
        """Every stored set: its base with its log applied in seq order.

        bases: sets of rollouts whose base is not written yet (built from their assessment's parts); a
        base written since (a compaction) takes precedence.
        """
        sets: dict[str, dict[str, BitMap]] = {key: dict(models) for key, models in (bases or {}).items()}
        for key, model, blob in self._db.execute("SELECT key, model, bitmap FROM sets"):
            sets.setdefault(key, {})[model] = BitMap.deserialize(blob)
        rows = self._db.execute("SELECT key, model, added, removed FROM set_deltas ORDER BY key, model, seq")
        for key, model, added, removed in rows:
            apply_delta_in_place(
                sets.setdefault(key, {}).setdefault(model, BitMap()),
                BitMap.deserialize(added),
                BitMap.deserialize(removed),
            )
        return sets

    def _rewrite(self, key: str, model: str, users: BitMap) -> None:
        self._db.execute("DELETE FROM set_deltas WHERE key = ? AND model = ?", (key, model))
        self._write_base(key, model, users)

    def _write_base(self, key: str, model: str, users: BitMap) -> None:
        blob = users.serialize()
        self._db.execute("REPLACE INTO sets VALUES (?, ?, ?)", (key, model, blob))
        self._sizes[(key, model)] = LogSize(rows=0, bytes=0, base_bytes=len(blob))
        self._rewritten.add((key, model))

    def _size(self, key: str, model: str) -> LogSize:
        if (key, model) not in self._sizes:
            rows, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(added) + length(removed)), 0) FROM set_deltas "
                "WHERE key = ? AND model = ?",
                (key, model),
            ).fetchone()
            base = self._db.execute(
                "SELECT length(bitmap) FROM sets WHERE key = ? AND model = ?", (key, model)
            ).fetchone()
            self._sizes[(key, model)] = LogSize(rows=rows, bytes=size, base_bytes=base[0] if base else 0)
        return self._sizes[(key, model)]
