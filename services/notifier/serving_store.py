"""Which models each cluster serves, per directive, as its last restrict report said (SQLite): a lift's reports
name no models, so a restart must still know them to tell restored access once the clusters serving it lifted."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_models (
    directive_id TEXT, cluster TEXT, models TEXT NOT NULL,
    PRIMARY KEY (directive_id, cluster));
"""


class ServingStore:
    """directive -> cluster -> models, written before the report's offset is committed; read back on start."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)
        self._held = self._restore()

    def of(self, directive_id: str) -> Mapping[str, Sequence[str]]:
        return self._held.get(directive_id, {})

    def reported(self, directive_id: str, clusters: Mapping[str, Sequence[str]]) -> None:
        """A restrict report's clusters that name their models replace what the directive had."""
        now = {c: list(m) for c, m in clusters.items()}
        if self._held.get(directive_id, {}) == now:
            return
        with self._conn:
            self._conn.execute("DELETE FROM cluster_models WHERE directive_id = ?", (directive_id,))
            self._conn.executemany(
                "INSERT INTO cluster_models VALUES (?, ?, ?)",
                [(directive_id, c, json.dumps(m)) for c, m in now.items()],
            )
        self._held[directive_id] = now

    def _restore(self) -> dict[str, dict[str, list[str]]]:
        held: dict[str, dict[str, list[str]]] = {}
        for directive_id, cluster, models in self._conn.execute("SELECT * FROM cluster_models"):
            held.setdefault(directive_id, {})[cluster] = json.loads(models)
        return held
