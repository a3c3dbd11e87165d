"""The Coverage on disk (SQLite): one row per directive and model, rewritten when a confirmed change is told."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from pyroaring import BitMap

from services.notifier.coverage import Coverage

SCHEMA = """
CREATE TABLE IF NOT EXISTS coverage (
    directive_id TEXT, model TEXT, revision INTEGER NOT NULL, users BLOB NOT NULL,
    PRIMARY KEY (directive_id, model));
CREATE TABLE IF NOT EXISTS grants_checked (registry_partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
"""


class CoverageStore:
    """Writes each change of the Coverage it holds; `restore()` gives it back after a restart."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)
        self.coverage = self._restore()

    def enforced(self, directive_id: str, revision: int, sets: Mapping[str, BitMap]) -> None:
        self.coverage.enforced(directive_id, revision, sets)
        self._write(directive_id)

    def delta(self, directive_id: str, revision: int, model: str, added: BitMap, removed: BitMap) -> None:
        self.coverage.delta(directive_id, revision, model, added, removed)
        self._write(directive_id)

    def lifted(self, directive_id: str) -> None:
        self.coverage.lifted(directive_id)
        self._write(directive_id)

    def grants_checked(self) -> dict[int, int]:
        """Per registry partition, the offset below which entitlement grants were already looked at."""
        return dict(self._conn.execute("SELECT * FROM grants_checked").fetchall())

    def check_grants(self, partition: int, next_offset: int) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO grants_checked VALUES (?, ?) ON CONFLICT (registry_partition) DO UPDATE "
                "SET next_offset = max(next_offset, excluded.next_offset)",
                (partition, next_offset),
            )

    def _write(self, directive_id: str) -> None:
        held = self.coverage.sets_of(directive_id)
        rows = [] if held is None else [(directive_id, m, held[0], u.serialize()) for m, u in held[1].items()]
        with self._conn:
            self._conn.execute("DELETE FROM coverage WHERE directive_id = ?", (directive_id,))
            self._conn.executemany("INSERT INTO coverage VALUES (?, ?, ?, ?)", rows)

    def _restore(self) -> Coverage:
        by_directive: dict[str, tuple[int, dict[str, BitMap]]] = {}
        for directive_id, model, revision, users in self._conn.execute("SELECT * FROM coverage"):
            by_directive.setdefault(directive_id, (revision, {}))[1][model] = BitMap.deserialize(users)
        coverage = Coverage()
        for directive_id, (revision, sets) in by_directive.items():
            coverage.enforced(directive_id, revision, sets)
        return coverage
