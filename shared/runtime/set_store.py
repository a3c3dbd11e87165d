"""Affected sets on disk, one definition for enforcement and the agent: a stored set per key and model plus
the log of deltas applied since, compacted at a bound. Until a key's sets are written (folded), the chunks
they came in as are their base: the caller passes those in on load, and a stored set replaces them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from pyroaring import BitMap

from shared.contracts.bitmaps import apply_delta_in_place

COMPACT_ROWS = 256  # replaying this many small rows on load takes milliseconds
COMPACT_FRACTION = 4  # a log larger than a quarter of its base's bytes is folded into the base...
COMPACT_MIN_BYTES = 64 * 1024  # ...but a log may always hold this much: a tiny base is not rewritten per delta


@dataclass(frozen=True)
class SetTables:
    """The names one service gives the two tables: stored sets (key, model, users) and the delta log."""

    sets: str = "sets"
    deltas: str = "set_deltas"
    key: str = "key"
    users: str = "bitmap"

    def schema(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.sets} ({self.key} TEXT NOT NULL, model TEXT NOT NULL, "
            f"{self.users} BLOB NOT NULL, PRIMARY KEY ({self.key}, model));\n"
            f"CREATE TABLE IF NOT EXISTS {self.deltas} ({self.key} TEXT NOT NULL, model TEXT NOT NULL, "
            f"seq INTEGER NOT NULL, added BLOB NOT NULL, removed BLOB NOT NULL, PRIMARY KEY ({self.key}, model, seq));"
        )


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
    """The two tables of one SQLite connection; the caller owns the transactions and reports their end.

    A delta appends one row (a million-user set is megabytes to rewrite); past the bound (rows, or bytes
    against the base) the model's set is written whole from memory and its log dropped. After a rollback,
    forget() names the sets whose rows were lost; the next transaction's repair() rewrites them from memory.
    """

    def __init__(self, db: sqlite3.Connection, tables: SetTables = SetTables(), max_rows: int = COMPACT_ROWS) -> None:
        self._db, self._t, self.max_rows = db, tables, max_rows
        self._db.executescript(tables.schema())
        self._sizes: dict[tuple[str, str], LogSize] = {}  # per log, as written so far (cleared on a rollback)
        self._stale: set[tuple[str, str]] = set()  # memory holds a delta whose row was rolled back
        self._rewritten: set[tuple[str, str]] = set()  # sets written whole by the open transaction

    def replace(self, key: str, sets: dict[str, BitMap]) -> None:
        """Write every model's set of a key (none: the key's sets go), dropping their logs."""
        t = self._t
        self._db.execute(f"DELETE FROM {t.sets} WHERE {t.key} = ?", (key,))
        self._db.execute(f"DELETE FROM {t.deltas} WHERE {t.key} = ?", (key,))
        for known in [k for k in self._sizes if k[0] == key]:
            del self._sizes[known]
        for model, users in sets.items():
            self._write_base(key, model, users)

    def append(self, key: str, model: str, seq: int, added: BitMap, removed: BitMap, current: BitMap) -> None:
        """Record one applied delta; `current` is the model's set after it (written instead when compacting).

        Nothing to log when this transaction already wrote the set whole from memory.
        """
        if (key, model) in self._rewritten:
            return
        row = (added.serialize(), removed.serialize())
        size = self._size(key, model)
        if size.full_after(len(row[0]) + len(row[1]), self.max_rows):
            self._rewrite(key, model, current)
            return
        t = self._t
        self._db.execute(
            f"INSERT OR REPLACE INTO {t.deltas} ({t.key}, model, seq, added, removed) VALUES (?, ?, ?, ?, ?)",
            (key, model, seq, *row),
        )
        size.rows += 1
        size.bytes += len(row[0]) + len(row[1])

    def repair(self, current: Callable[[str, str], BitMap | None]) -> None:
        """Rewrite from memory (current(key, model)) each set whose last change was rolled back."""
        for key, model in sorted(self._stale):
            users = current(key, model)
            if users is None:  # no longer held: its sets were replaced or dropped
                self._rewritten.add((key, model))
            else:
                self._rewrite(key, model, users)

    def committed(self) -> None:
        """The open transaction committed: the sets it wrote whole hold everything memory does."""
        self._stale -= self._rewritten
        self._rewritten.clear()

    def forget(self, stale: set[tuple[str, str]]) -> None:
        """A transaction rolled back: drop the cached log sizes (read again when needed); `stale` sets are
        ahead in memory of their lost rows and are rewritten whole by the next transaction (repair())."""
        self._sizes.clear()
        self._rewritten.clear()
        self._stale |= stale

    def load(
        self, bases: dict[str, dict[str, BitMap]] | None = None, *, new_models: bool = True
    ) -> dict[str, dict[str, BitMap]]:
        """Every key's sets: per model its stored set, else its base, with its log applied in seq order.

        bases: sets of keys not folded yet (their chunks). A stored set of a model REPLACES its base: it was
        written from memory (a compaction) and already holds what the chunks did, minus what was removed
        since. new_models=False: a logged delta of a model with neither is skipped instead of creating it.
        """
        sets = {key: dict(models) for key, models in (bases or {}).items()}  # bases are taken, not copied
        t = self._t
        for key, model, blob in self._db.execute(f"SELECT {t.key}, model, {t.users} FROM {t.sets}"):
            sets.setdefault(key, {})[model] = BitMap.deserialize(blob)
        rows = self._db.execute(f"SELECT {t.key}, model, added, removed FROM {t.deltas} ORDER BY {t.key}, model, seq")
        for key, model, added, removed in rows:
            models = sets.setdefault(key, {})
            if model in models or new_models:
                users = models.setdefault(model, BitMap())
                apply_delta_in_place(users, BitMap.deserialize(added), BitMap.deserialize(removed))
        return sets

    def _rewrite(self, key: str, model: str, users: BitMap) -> None:
        t = self._t
        self._db.execute(f"DELETE FROM {t.deltas} WHERE {t.key} = ? AND model = ?", (key, model))
        self._write_base(key, model, users)

    def _write_base(self, key: str, model: str, users: BitMap) -> None:
        blob = users.serialize()
        t = self._t
        self._db.execute(f"REPLACE INTO {t.sets} ({t.key}, model, {t.users}) VALUES (?, ?, ?)", (key, model, blob))
        self._sizes[(key, model)] = LogSize(rows=0, bytes=0, base_bytes=len(blob))
        self._rewritten.add((key, model))

    def _size(self, key: str, model: str) -> LogSize:
        if (key, model) not in self._sizes:
            self._sizes[(key, model)] = self._measure(key, model)
        return self._sizes[(key, model)]

    def _measure(self, key: str, model: str) -> LogSize:
        t = self._t
        rows, size = self._db.execute(
            f"SELECT count(*), coalesce(sum(length(added) + length(removed)), 0) FROM {t.deltas} "
            f"WHERE {t.key} = ? AND model = ?",
            (key, model),
        ).fetchone()
        base = self._db.execute(
            f"SELECT length({t.users}) FROM {t.sets} WHERE {t.key} = ? AND model = ?", (key, model)
        ).fetchone()
        return LogSize(rows=rows, bytes=size, base_bytes=base[0] if base else 0)
